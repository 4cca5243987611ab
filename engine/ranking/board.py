"""An in-memory board of decayed signal counts per product and per (query, product).

Each web worker holds one, mirrored from the shared store (the database), and the
simulator drives one directly. Reads decay the stored values to the caller's clock, so
the same board answers "now" for a live server and any simulated time in a bench.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
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
_WIDTH = 3 * len(SIGNALS)  # a flat row: SIGNALS x (short, long, stamp)
_FIRST_ROWS = 1024


def _flat(slots: Mapping[str, DecayedCount]) -> tuple[float, ...]:
    """One product's counts as a flat row of SIGNALS x (short, long, stamp), for activity_array."""
    row: list[float] = []
    for name in SIGNALS:
        count = slots.get(name)
        row.extend((count.short, count.long, count.stamp) if count is not None else (0.0, 0.0, 0.0))
    return tuple(row)


class SignalBoard:
    """Product id -> signal -> DecayedCount, and (normalized query, product id) -> the same."""

    def __init__(self, half_lives: HalfLives | None = None) -> None:
        self.half_lives = half_lives or HalfLives()
        self._negative_half_lives = -np.array([self.half_lives.short, self.half_lives.long])
        self._products: dict[int, dict[str, DecayedCount]] = {}
        self._queries: dict[str, dict[int, dict[str, DecayedCount]]] = {}
        # The same counts flattened (`_flat`), rewritten on each change: stage 2 reads a hundred
        # products per search, and walking the nested dicts, then building an array from a hundred
        # tuples, was most of its time (profiled). Products: one row each of a matrix (row 0 stays
        # zero: a stamp of 0 decays to 0 at any real moment), so a search takes its rows in one
        # numpy gather. Per query: a dict, since few of a search's candidates were engaged after it.
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
            slots = self._products.setdefault(product_id, {})
            slots[signal] = slots.get(signal, DecayedCount()).add(weight, at, self.half_lives)
            self._write_row(product_id, _flat(slots))
            if query:
                per_query = self._queries.setdefault(query, {}).setdefault(product_id, {})
                per_query[signal] = per_query.get(signal, DecayedCount()).add(weight, at, self.half_lives)
                self._query_rows.setdefault(query, {})[product_id] = _flat(per_query)

    def put(self, product_id: int, signal: str, count: DecayedCount, query: str = "") -> None:
        """Set a stored count as read from the shared store (replaces what was held)."""
        with self._lock:
            if query:
                slots = self._queries.setdefault(query, {}).setdefault(product_id, {})
                slots[signal] = count
                self._query_rows.setdefault(query, {})[product_id] = _flat(slots)
            else:
                slots = self._products.setdefault(product_id, {})
                slots[signal] = count
                self._write_row(product_id, _flat(slots))

    def _write_row(self, product_id: int, row: tuple[float, ...]) -> None:
        """Set a product's matrix row (the lock held).

        A reader never takes the lock: the matrix only grows by replacement, after the copy, and a
        row's index is published after its values, so a gather never indexes past the matrix it
        reads. What a reader may see is a row being rewritten half old, half new: that one search's
        features then mix the moments before and after the write, and the next search reads the
        row whole. A forgotten product's row is zeroed and never handed to another product (a
        search in flight may still hold its index; the catalog loses few products).
        """
        index = self._row_of.get(product_id)
        if index is None:
            index, self._rows_used = self._rows_used, self._rows_used + 1
            if index >= len(self._matrix):
                grown = np.zeros((2 * len(self._matrix), _WIDTH))
                grown[: len(self._matrix)] = self._matrix
                self._matrix = grown
            self._matrix[index] = row
            self._row_of[product_id] = index
        else:
            self._matrix[index] = row

    def activity(self, product_id: int, now: float) -> ProductActivity:
        slots = self._products.get(product_id)
        if not slots:
            return QUIET
        return ProductActivity(**{name: count.at(now, self.half_lives) for name, count in slots.items()})

    def query_activity(self, query: str, now: float) -> dict[int, ProductActivity]:
        """What shoppers did with each product after searching this (normalized) query."""
        per_query = self._queries.get(query)
        if not per_query:
            return {}
        return {
            pid: ProductActivity(**{name: count.at(now, self.half_lives) for name, count in slots.items()})
            for pid, slots in list(per_query.items())
        }

    def activity_array(self, product_ids: Sequence[int], now: float, query: str = "") -> np.ndarray:
        """(n, len(SIGNALS), 2): each product's counts decayed to `now` (per query when given), 0 when quiet.

        The vector form of activity()/query_activity() for stage 2's hundred candidates: the
        decay in numpy over gathered rows (the per-product objects cost more than the math).
        """
        n = len(product_ids)
        if not query:
            row_of = self._row_of
            indexes = [row_of.get(pid, 0) for pid in product_ids]  # before the matrix: see _write_row
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
        """(m, SIGNALS x (short, long)) decayed to `now` from flat (m, SIGNALS x (short, long, stamp)) rows."""
        raw = raw.reshape(len(raw), len(SIGNALS), 3)
        elapsed = np.maximum(now - raw[..., 2:3], 0.0)  # (m, signals, 1)
        # The same expression as decay.decay(), so both forms give the same bits.
        return raw[..., :2] * 2.0 ** (elapsed / self._negative_half_lives)

    def forget(self, product_id: int) -> None:
        """Drop a product's counts (it left the catalog)."""
        with self._lock:
            self._products.pop(product_id, None)
            index = self._row_of.pop(product_id, None)
            if index is not None:
                self._matrix[index] = 0.0

    def __len__(self) -> int:
        return len(self._products)
