"""A shopper simulator: visitors search, click, add to cart and buy like a position-biased crowd.

Behaviour follows a position-based click model driven by graded judgments: a shopper
examines position k with probability (1/k)^eta and, once a result is examined, clicks it
with a probability that grows with its judged gain (ESCI: Exact most likely, Substitute
sometimes, Complement and Irrelevant or unjudged rarely). Clicked results go to the cart
and get bought in proportion to their gain. Some searches are refined with a rating filter
or a sort, as shoppers do, which moves products to other positions: without that
variation no click model can tell position from attractiveness.

Transport is abstract (one per visitor, holding its cookie), so the same code drives the
real storefront API over HTTP and a fake shop in tests. Every session draws from its own
seeded random stream: the same seed gives the same behaviour, in any thread order.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.evaluation.judgments import Judgments, Query

MAX_SESSIONS = 200_000  # a bound on what one command may send
REFINEMENTS: tuple[dict[str, str], ...] = ({"rating_min": "4"}, {"rating_min": "4.5"}, {"sort": "rating"})


class Transport(Protocol):
    """One visitor's connection to the shop (keeps its session cookie)."""

    def search(self, params: dict[str, str]) -> dict:
        """GET /api/search with these parameters; the decoded JSON body."""
        ...

    def send_events(self, events: list[dict]) -> None:
        """POST /api/events with {"events": events}; raises on a refusal."""
        ...


@dataclass(frozen=True)
class ShopperModel:
    """How simulated shoppers behave; probabilities, not counts."""

    eta: float = 1.0  # examination at position k: (1 / k) ** eta
    click_max: float = 0.9  # click probability of an examined result with the best gain
    click_min: float = 0.03  # ... of an irrelevant or unjudged one (shoppers misclick)
    cart_max: float = 0.35  # add-to-cart probability after a click on a best-gain result
    purchase_given_cart: float = 0.5
    refine_share: float = 0.25  # searches re-run with a filter or sort (position variation)
    searches_per_session: tuple[int, int] = (1, 3)  # inclusive range

    def examination(self, position: int) -> float:
        return (1.0 / position) ** self.eta

    def click_probability(self, relative_gain: float) -> float:
        # sqrt spreads ESCI's 1 / 0.1 / 0.01 gains into 1 / 0.32 / 0.1 of the click range.
        return self.click_min + (self.click_max - self.click_min) * math.sqrt(max(relative_gain, 0.0))


@dataclass
class SimulationSummary:
    sessions: int = 0
    searches: int = 0
    shown: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    errors: int = 0
    seconds: float = 0.0
    clicks_by_position: Counter = field(default_factory=Counter)
    shown_by_position: Counter = field(default_factory=Counter)
    clicks_by_gain: Counter = field(default_factory=Counter)  # relative gain rounded -> clicks
    error_messages: list[str] = field(default_factory=list)

    def merge(self, other: SimulationSummary) -> None:
        for name in ("sessions", "searches", "shown", "clicks", "carts", "purchases", "errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.clicks_by_position.update(other.clicks_by_position)
        self.shown_by_position.update(other.shown_by_position)
        self.clicks_by_gain.update(other.clicks_by_gain)
        self.error_messages.extend(other.error_messages[: max(0, 5 - len(self.error_messages))])

    def ctr(self, position: int) -> float:
        shown = self.shown_by_position[position]
        return self.clicks_by_position[position] / shown if shown else 0.0

    def lines(self) -> list[str]:
        """A short human-readable report."""
        rate = self.sessions / self.seconds if self.seconds > 0 else 0.0
        out = [
            f"sessions {self.sessions}, searches {self.searches}, results shown {self.shown}, "
            f"clicks {self.clicks}, add-to-carts {self.carts}, purchases {self.purchases}, errors {self.errors}",
            f"{self.seconds:.1f} s ({rate:.1f} sessions/s)",
            "CTR by position: " + ", ".join(f"{k}: {self.ctr(k):.3f}" for k in range(1, 11)),
            "clicks by relative gain: " + ", ".join(f"{g}: {n}" for g, n in sorted(self.clicks_by_gain.items())),
        ]
        out.extend(f"error: {message}" for message in self.error_messages)
        return out


class Simulator:
    """Drives visitors through the shop; queries and graded judgments say what they want."""

    def __init__(self, queries: Sequence[Query], judgments: Judgments, model: ShopperModel | None = None) -> None:
        self.queries = [q for q in queries if judgments.grades.get(q.qid)]
        if not self.queries:
            raise ValueError("none of the queries has judgments")
        self.judgments = judgments
        self.model = model or ShopperModel()
        top = max(judgments.gain(g) for docs in judgments.grades.values() for g in docs.values())
        self.top_gain = top if top > 0 else 1.0

    def relative_gain(self, qid: str, product: str) -> float:
        """The judged gain of a product for a query over the best gain there is (0 when unjudged)."""
        grade = self.judgments.grades.get(qid, {}).get(product)
        return 0.0 if grade is None else self.judgments.gain(grade) / self.top_gain

    def _search(self, visitor: Transport, rng: np.random.Generator, summary: SimulationSummary) -> list[dict]:
        query = self.queries[int(rng.integers(len(self.queries)))]
        params = {"q": query.text}
        if rng.random() < self.model.refine_share:
            params.update(REFINEMENTS[int(rng.integers(len(REFINEMENTS)))])
        body = visitor.search(params)
        summary.searches += 1
        events: list[dict] = []
        for result in body.get("results", []):
            position, product = int(result["position"]), str(result["product_id"])
            summary.shown += 1
            summary.shown_by_position[position] += 1
            if rng.random() >= self.model.examination(position):
                continue
            gain = self.relative_gain(query.qid, product)
            if rng.random() >= self.model.click_probability(gain):
                continue
            base = {"product_id": product, "search_id": body["search_id"], "position": position}
            events.append({"type": "click", **base})
            summary.clicks += 1
            summary.clicks_by_position[position] += 1
            summary.clicks_by_gain[round(gain, 2)] += 1
            if rng.random() < self.model.cart_max * math.sqrt(gain):
                events.append({"type": "add_to_cart", **base})
                summary.carts += 1
                if rng.random() < self.model.purchase_given_cart:
                    events.append({"type": "purchase", **base})
                    summary.purchases += 1
        return events

    def session(self, visitor: Transport, seed: int, index: int) -> SimulationSummary:
        """One visitor's session: a few searches, each followed by its feedback events."""
        rng = np.random.default_rng([seed, index])
        summary = SimulationSummary(sessions=1)
        low, high = self.model.searches_per_session
        for _ in range(int(rng.integers(low, high + 1))):
            try:
                events = self._search(visitor, rng, summary)
                if events:
                    visitor.send_events(events)
            except Exception as exc:  # a refused request is counted and reported, the crowd goes on
                summary.errors += 1
                summary.error_messages.append(f"{type(exc).__name__}: {exc}"[:300])
        return summary

    def run(
        self,
        new_visitor: Callable[[], Transport],
        sessions: int,
        seed: int = 0,
        workers: int = 1,
        max_errors: int = 50,
        progress: Callable[[int, int], None] | None = None,
    ) -> SimulationSummary:
        """Run `sessions` visitors (each from new_visitor()), `workers` at a time; stops after max_errors."""
        if not 0 < sessions <= MAX_SESSIONS:
            raise ValueError(f"sessions must be between 1 and {MAX_SESSIONS}")
        total = SimulationSummary()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, sessions, 50 * max(1, workers)):
                batch = range(start, min(sessions, start + 50 * max(1, workers)))
                for result in pool.map(lambda i: self.session(new_visitor(), seed, i), batch):
                    total.merge(result)
                if progress is not None:
                    progress(batch.stop, sessions)
                if total.errors >= max_errors:
                    total.error_messages.append(f"stopped after {total.errors} errors")
                    break
        total.seconds = time.perf_counter() - started
        return total
