"""Frequently bought together: decayed co-occurrence of products carted or bought in one session.

A session window is one visitor's carts and purchases within `window` seconds of each other.
When a product joins a visitor's window, each product already in it pairs with the new one
(both directions, weight 1) and the new product's own basket count (the diagonal, (p, p))
grows by 1; a product already in the window counts nothing again. Every count decays like
the other signals (engine.ranking.decay), so old habits fade.

Scoring is lift-style: pair count over what chance predicts from the two basket counts,
E(a, b) = n(a) n(b) / N, with a prior that keeps one stray pair from ranking first:
score = n(a, b) / (E(a, b) + PRIOR). A bestseller co-occurs with everything and so has a
large E: it ranks only where it is bought with the anchor more than with anything else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.ranking.decay import DecayedCount, HalfLives

SESSION_WINDOW = 2 * 3600.0  # seconds: carts and purchases this close belong to one shopping session
PRIOR = 1.0
BASKET_SIGNALS = ("add_to_cart", "purchase")


def window_increments(
    earlier: Sequence[tuple[int, float]], product_id: int, at: float, window: float = SESSION_WINDOW
) -> list[tuple[int, int, float]]:
    """(a, b, at) pairs to add 1 to when `product_id` joins a session whose (product, time) were `earlier`.

    `earlier` may hold any of the visitor's baskets events: those outside `window` before
    `at` (or after it) are ignored. Empty when the product is already in the window.
    """
    inside = {pid for pid, t in earlier if at - window <= t <= at}
    if product_id in inside:
        return []
    out = [(product_id, product_id, at)]
    for other in sorted(inside):
        out += [(product_id, other, at), (other, product_id, at)]
    return out


def session_increments(
    events: Iterable[tuple[int, float]], window: float = SESSION_WINDOW
) -> list[tuple[int, int, float]]:
    """Every increment of one visitor's basket events (product, time) in time order (for rebuilds)."""
    seen: list[tuple[int, float]] = []
    out: list[tuple[int, int, float]] = []
    for pid, at in sorted(events, key=lambda e: e[1]):
        out += window_increments(seen, pid, at, window)
        seen.append((pid, at))
    return out


@dataclass(frozen=True)
class CoCounts:
    """Co-occurrence decayed to one moment: anchor -> partner -> n(a, b), product -> n(p), and N."""

    pairs: Mapping[int, Mapping[int, float]]
    baskets: Mapping[int, float]
    total: float

    def scores(self, anchors: Sequence[int], prior: float = PRIOR) -> list[tuple[int, float]]:
        """Partners of the anchors by summed lift (anchors themselves left out), best first."""
        summed: dict[int, float] = defaultdict(float)
        for anchor in anchors:
            n_a = self.baskets.get(anchor, 0.0)
            for partner, n_ab in self.pairs.get(anchor, {}).items():
                if partner in anchors or n_ab <= 0:
                    continue
                expected = n_a * self.baskets.get(partner, 0.0) / self.total if self.total > 0 else 0.0
                summed[partner] += n_ab / (expected + prior)
        return sorted(summed.items(), key=lambda item: (-item[1], item[0]))


@dataclass
class PairBoard:
    """An in-memory store of the counts (the simulator's, the bench's and tests'); servers read the database."""

    half_lives: HalfLives = field(default_factory=HalfLives)
    window: float = SESSION_WINDOW
    counts: dict[tuple[int, int], DecayedCount] = field(default_factory=dict)
    _sessions: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))

    def add_basket_event(self, visitor: str, product_id: int, at: float) -> None:
        """A cart or purchase by `visitor` at `at`."""
        history = self._sessions[visitor]
        for a, b, t in window_increments(history, product_id, at, self.window):
            self.counts[(a, b)] = self.counts.get((a, b), DecayedCount()).add(1.0, t, self.half_lives)
        history.append((product_id, at))

    def at(self, now: float) -> CoCounts:
        """Every count decayed to `now`, at the long half-life (bought-together is a slow relation)."""
        pairs: dict[int, dict[int, float]] = defaultdict(dict)
        baskets: dict[int, float] = {}
        for (a, b), count in self.counts.items():
            value = count.at(now, self.half_lives)[1]
            if a == b:
                baskets[a] = value
            else:
                pairs[a][b] = value
        return CoCounts(pairs, baskets, sum(baskets.values()))
