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
_QUIET_ROW = (0.0,) * (3 * len(SIGNALS))  # a stamp of 0 decays to 0 at any real moment


def _flat(slots: Mapping[str, DecayedCount]) -> tuple[float, ...]:
    """One product's counts as a row of SIGNALS x (short, long, stamp), kept for activity_array's gather."""
    row: list[float] = []
    for name in SIGNALS:
        count = slots.get(name)
        row.extend((count.short, count.long, count.stamp) if count is not None else (0.0, 0.0, 0.0))
    return tuple(row)


class SignalBoard:
    """Product id -> signal -> DecayedCount, and (normalized query, product id) -> the same."""

    def __init__(self, half_lives: HalfLives | None = None) -> None:
        self.half_lives = half_lives or HalfLives()
        self._products: dict[int, dict[str, DecayedCount]] = {}
        self._queries: dict[str, dict[int, dict[str, DecayedCount]]] = {}
        # The same counts flattened per product (`_flat`), rewritten on each change: stage 2 gathers
        # a hundred of them per search, and walking the nested dicts was most of its time (profiled).
        self._rows: dict[int, tuple[float, ...]] = {}
        self._query_rows: dict[str, dict[int, tuple[float, ...]]] = {}
        self._lock = threading.Lock()

    def add(self, product_id: int, signal: str, at: float, weight: float = 1.0, query: str = "") -> None:
        """Count one event (the simulator's path; servers mirror the store with `put`)."""
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}")
        with self._lock:
            slots = self._products.setdefault(product_id, {})
            slots[signal] = slots.get(signal, DecayedCount()).add(weight, at, self.half_lives)
            self._rows[product_id] = _flat(slots)
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
                self._rows[product_id] = _flat(slots)

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

        The vector form of activity()/query_activity() for stage 2's hundred candidates: one
        gather of flattened rows, the decay in numpy (the per-product objects cost more than the math).
        """
        rows = self._query_rows.get(query, {}) if query else self._rows
        raw = np.array([rows.get(pid, _QUIET_ROW) for pid in product_ids], dtype=np.float64)
        raw = raw.reshape(len(product_ids), len(SIGNALS), 3)
        elapsed = np.maximum(now - raw[..., 2], 0.0)
        return np.stack(
            (
                raw[..., 0] * 2.0 ** (-elapsed / self.half_lives.short),
                raw[..., 1] * 2.0 ** (-elapsed / self.half_lives.long),
            ),
            axis=-1,
        )

    def forget(self, product_id: int) -> None:
        """Drop a product's counts (it left the catalog)."""
        with self._lock:
            self._products.pop(product_id, None)
            self._rows.pop(product_id, None)

    def __len__(self) -> int:
        return len(self._products)
