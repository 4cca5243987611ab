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


class SignalBoard:
    """Product id -> signal -> DecayedCount, and (normalized query, product id) -> the same."""

    def __init__(self, half_lives: HalfLives | None = None) -> None:
        self.half_lives = half_lives or HalfLives()
        self._products: dict[int, dict[str, DecayedCount]] = {}
        self._queries: dict[str, dict[int, dict[str, DecayedCount]]] = {}
        self._lock = threading.Lock()

    def add(self, product_id: int, signal: str, at: float, weight: float = 1.0, query: str = "") -> None:
        """Count one event (the simulator's path; servers mirror the store with `put`)."""
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}")
        with self._lock:
            slots = self._products.setdefault(product_id, {})
            slots[signal] = slots.get(signal, DecayedCount()).add(weight, at, self.half_lives)
            if query:
                per_query = self._queries.setdefault(query, {}).setdefault(product_id, {})
                per_query[signal] = per_query.get(signal, DecayedCount()).add(weight, at, self.half_lives)

    def put(self, product_id: int, signal: str, count: DecayedCount, query: str = "") -> None:
        """Set a stored count as read from the shared store (replaces what was held)."""
        with self._lock:
            if query:
                self._queries.setdefault(query, {}).setdefault(product_id, {})[signal] = count
            else:
                self._products.setdefault(product_id, {})[signal] = count

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
        gather in Python, the decay in numpy (the per-product objects cost more than the math).
        """
        table: Mapping[int, dict[str, DecayedCount]] = self._queries.get(query, {}) if query else self._products
        raw = np.zeros((len(product_ids), len(SIGNALS), 3))
        for row, pid in enumerate(product_ids):
            slots = table.get(pid)
            if slots:
                for column, name in enumerate(SIGNALS):
                    count = slots.get(name)
                    if count is not None:
                        raw[row, column] = (count.short, count.long, count.stamp)
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

    def __len__(self) -> int:
        return len(self._products)
