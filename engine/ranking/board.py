"""An in-memory board of decayed signal counts per product and per (query, product).

Each web worker holds one, mirrored from the shared store (the database), and the
simulator drives one directly. Reads decay the stored values to the caller's clock, so
the same board answers "now" for a live server and any simulated time in a bench.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.ranking.decay import DecayedCount, HalfLives

SIGNALS = ("impression", "click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class ProductActivity:
    """One product's signals decayed to a moment: (short, long) per signal."""

    impression: tuple[float, float] = (0.0, 0.0)
    click: tuple[float, float] = (0.0, 0.0)
    add_to_cart: tuple[float, float] = (0.0, 0.0)
    purchase: tuple[float, float] = (0.0, 0.0)


QUIET = ProductActivity()
_WIDTH = 3 * len(SIGNALS)  # a row: SIGNALS x (short, long, stamp)
_AT = {name: 3 * i for i, name in enumerate(SIGNALS)}  # where each signal's triple starts in a row
_QUIET_ROW = (0.0,) * _WIDTH  # a stamp of 0 decays to 0 at any real moment
_FIRST_ROWS = 1024


def _count(row: Sequence[float], signal: str) -> DecayedCount:
    at = _AT[signal]
    return DecayedCount(float(row[at]), float(row[at + 1]), float(row[at + 2]))


def _with(row: Sequence[float], signal: str, count: DecayedCount) -> tuple[float, ...]:
    at = _AT[signal]
    return (*row[:at], count.short, count.long, count.stamp, *row[at + 3 :])


class SignalBoard:
    """Product id -> a row of SIGNALS x DecayedCount, and (normalized query, product id) -> the same.

    Each product's counts are one row of a matrix (row 0 stays zero: the quiet row), so stage 2
    takes its hundred candidates' rows with one numpy gather: walking per-product objects was
    most of its time (profiled). Per query, a dict of row tuples: few of a search's candidates
    were engaged after that query.
    """

    def __init__(self, half_lives: HalfLives | None = None) -> None:
        self.half_lives = half_lives or HalfLives()
        self._negative_half_lives = -np.array([self.half_lives.short, self.half_lives.long])
        self._matrix = np.zeros((_FIRST_ROWS, _WIDTH))
        self._row_of: dict[int, int] = {}
        self._rows_used = 1  # row 0 is the quiet row
        self._query_rows: dict[str, dict[int, tuple[float, ...]]] = {}
        self._lock = threading.Lock()

    def add(self, product_id: int, signal: str, at: float, weight: float = 1.0, query: str = "") -> None:
        """Count one event (the simulator's path; servers mirror the store with `put`)."""
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}")
        with self._lock:
            index = self._row_of.get(product_id, 0)
            self._write(product_id, signal, _count(self._matrix[index], signal).add(weight, at, self.half_lives))
            if query:
                rows = self._query_rows.setdefault(query, {})
                row = rows.get(product_id, _QUIET_ROW)
                rows[product_id] = _with(row, signal, _count(row, signal).add(weight, at, self.half_lives))

    def put(self, product_id: int, signal: str, count: DecayedCount, query: str = "") -> None:
        """Set a stored count as read from the shared store (replaces what was held)."""
        with self._lock:
            if query:
                rows = self._query_rows.setdefault(query, {})
                rows[product_id] = _with(rows.get(product_id, _QUIET_ROW), signal, count)
            else:
                self._write(product_id, signal, count)

    def _write(self, product_id: int, signal: str, count: DecayedCount) -> None:
        """Set one signal of a product's matrix row (the lock held).

        A reader never takes the lock: the matrix only grows by replacement, after the copy, and a
        row's index is published after its values, so a gather never indexes past the matrix it
        reads. What a reader may see is a row being rewritten: that one search's features then mix
        the moments before and after the write, and the next search reads the row whole. A
        forgotten product's row is zeroed and never handed to another product (a search in flight
        may still hold its index; the catalog loses few products).
        """
        index = self._row_of.get(product_id)
        if index is None:
            index, self._rows_used = self._rows_used, self._rows_used + 1
            if index >= len(self._matrix):
                grown = np.zeros((2 * len(self._matrix), _WIDTH))
                grown[: len(self._matrix)] = self._matrix
                self._matrix = grown
            self._write_triple(index, signal, count)
            self._row_of[product_id] = index
        else:
            self._write_triple(index, signal, count)

    def _write_triple(self, index: int, signal: str, count: DecayedCount) -> None:
        at = _AT[signal]
        self._matrix[index, at : at + 3] = (count.short, count.long, count.stamp)

    def _activity(self, row: Sequence[float], now: float) -> ProductActivity:
        return ProductActivity(**{name: _count(row, name).at(now, self.half_lives) for name in SIGNALS})

    def activity(self, product_id: int, now: float) -> ProductActivity:
        index = self._row_of.get(product_id)
        return QUIET if index is None else self._activity(self._matrix[index], now)

    def query_activity(self, query: str, now: float) -> dict[int, ProductActivity]:
        """What shoppers did with each product after searching this (normalized) query."""
        rows = self._query_rows.get(query, {})
        return {pid: self._activity(row, now) for pid, row in list(rows.items())}

    def activity_array(self, product_ids: Sequence[int], now: float, query: str = "") -> np.ndarray:
        """(n, len(SIGNALS), 2): each product's counts decayed to `now` (per query when given), 0 when quiet.

        The vector form of activity()/query_activity() for stage 2's hundred candidates: the
        decay in numpy over gathered rows (the per-product objects cost more than the math).
        """
        n = len(product_ids)
        if not query:
            row_of = self._row_of
            indexes = [row_of.get(pid, 0) for pid in product_ids]  # before the matrix: see _write
            return self._decayed(self._matrix[indexes], now).reshape(n, len(SIGNALS), 2)
        out = np.zeros((n, len(SIGNALS), 2))
        rows = self._query_rows.get(query)
        if rows:
            engaged = [(i, rows[pid]) for i, pid in enumerate(product_ids) if pid in rows]
            if engaged:
                at, raw = zip(*engaged, strict=True)
                out[list(at)] = self._decayed(np.array(raw), now).reshape(len(at), len(SIGNALS), 2)
        return out

    def _decayed(self, raw: np.ndarray, now: float) -> np.ndarray:
        """(m, SIGNALS x (short, long)) decayed to `now` from (m, SIGNALS x (short, long, stamp)) rows."""
        raw = raw.reshape(len(raw), len(SIGNALS), 3)
        elapsed = np.maximum(now - raw[..., 2:3], 0.0)  # (m, signals, 1)
        # The same expression as decay.decay(), so both forms give the same bits.
        return raw[..., :2] * 2.0 ** (elapsed / self._negative_half_lives)

    def forget(self, product_id: int) -> None:
        """Drop a product's counts (it left the catalog)."""
        with self._lock:
            index = self._row_of.pop(product_id, None)
            if index is not None:
                self._matrix[index] = 0.0

    def __len__(self) -> int:
        return len(self._row_of)
