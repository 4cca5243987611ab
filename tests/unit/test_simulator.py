"""The shopper simulator against a fake shop: position-biased, relevance-driven, reproducible."""

from __future__ import annotations

import itertools
import threading

import pytest

from engine.evaluation.judgments import ESCI_GAINS, Judgments, Query
from engine.evaluation.simulator import REFINEMENTS, ShopperModel, Simulator

QUERIES = [Query("q1", "red mug"), Query("q2", "blue lamp")]
# q1: every product Exact, so clicks differ only by position; q2: Exact and Irrelevant alternate.
GRADES = {"q1": {f"A{i}": 100 for i in range(1, 11)}, "q2": {f"B{i}": (100 if i % 2 else 0) for i in range(1, 11)}}
JUDGMENTS = Judgments(grades=GRADES, rel_level=100, gain_map=ESCI_GAINS)


class FakeShop:
    """Answers searches with a fixed ranking and records every call, like the real API would."""

    def __init__(self, fail_events: bool = False) -> None:
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.searches: list[dict] = []
        self.events: list[dict] = []
        self.visitors = 0
        self.fail_events = fail_events

    def visitor(self) -> FakeVisitor:
        with self.lock:
            self.visitors += 1
        return FakeVisitor(self)


class FakeVisitor:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def search(self, params: dict[str, str]) -> dict:
        prefix = "A" if params["q"] == "red mug" else "B"
        with self.shop.lock:
            search_id = next(self.shop.ids)
            self.shop.searches.append(dict(params))
        results = [{"position": k, "product_id": f"{prefix}{k}"} for k in range(1, 11)]
        return {"search_id": search_id, "results": results}

    def send_events(self, events: list[dict]) -> None:
        if self.shop.fail_events:
            raise RuntimeError("events answered 400")
        with self.shop.lock:
            self.shop.events.extend(events)


def run(sessions: int, seed: int, model: ShopperModel | None = None, workers: int = 1) -> tuple[FakeShop, object]:
    shop = FakeShop()
    summary = Simulator(QUERIES, JUDGMENTS, model).run(shop.visitor, sessions, seed=seed, workers=workers)
    return shop, summary


def test_clicks_follow_position_bias():
    shop, summary = run(1500, seed=1)
    assert summary.sessions == 1500 and shop.visitors == 1500  # one visitor (cookie) per session
    exact_clicks = [e for e in shop.events if e["type"] == "click" and e["product_id"].startswith("A")]
    by_position = {k: sum(1 for e in exact_clicks if e["position"] == k) for k in range(1, 11)}
    shown_q1 = sum(1 for s in shop.searches if s["q"] == "red mug")
    # All Exact: click-through at k is about 0.9 / k (examination (1/k)^1 times attraction 0.9).
    for k in (1, 2, 4, 8):
        assert by_position[k] / shown_q1 == pytest.approx(0.9 / k, abs=0.04)
    assert summary.ctr(1) > summary.ctr(2) > summary.ctr(5)


def test_relevance_drives_clicks_and_purchases():
    shop, summary = run(1500, seed=2)
    clicks_b = [e for e in shop.events if e["type"] == "click" and e["product_id"].startswith("B")]
    exact = sum(1 for e in clicks_b if int(e["product_id"][1:]) % 2 == 1)
    assert exact > 8 * (len(clicks_b) - exact)  # Irrelevant products are clicked rarely
    bought = [e for e in shop.events if e["type"] == "purchase"]
    assert bought and all(GRADES["q2" if e["product_id"][0] == "B" else "q1"][e["product_id"]] == 100 for e in bought)
    assert summary.clicks_by_gain[1.0] > summary.clicks_by_gain[0.0] > 0
    assert summary.carts >= summary.purchases > 0
    for e in shop.events:  # every event names the search, the product and where it was shown
        assert set(e) == {"type", "product_id", "search_id", "position"}


def test_same_seed_same_shoppers_in_any_thread_order():
    first, _ = run(200, seed=7)
    again, _ = run(200, seed=7, workers=4)
    other, _ = run(200, seed=8)
    key = lambda e: (e["search_id"], e["position"], e["type"])  # noqa: E731
    assert sorted(map(len, first.searches)) == sorted(map(len, again.searches))
    assert len(first.events) == len(again.events)
    assert sorted(e["type"] for e in first.events) == sorted(e["type"] for e in again.events)
    assert [key(e) for e in first.events] != [key(e) for e in other.events]


def test_some_searches_are_refined():
    shop, summary = run(400, seed=3, model=ShopperModel(refine_share=0.5))
    refined = [s for s in shop.searches if len(s) > 1]
    assert 0.4 < len(refined) / len(shop.searches) < 0.6
    assert {tuple(sorted(s.items() - {("q", s["q"])})) for s in refined} == {
        tuple(sorted(r.items())) for r in REFINEMENTS
    }
    assert summary.searches == len(shop.searches)


def test_refusals_are_counted_and_stop_the_run():
    shop = FakeShop(fail_events=True)
    summary = Simulator(QUERIES, JUDGMENTS).run(shop.visitor, 500, seed=1, max_errors=10)
    assert summary.errors >= 10 and summary.sessions < 500
    assert any("events answered 400" in m for m in summary.error_messages)
    assert any("stopped after" in line for line in summary.lines())


def test_bad_arguments():
    with pytest.raises(ValueError, match="judgments"):
        Simulator([Query("x", "unjudged")], JUDGMENTS)
    with pytest.raises(ValueError, match="sessions"):
        Simulator(QUERIES, JUDGMENTS).run(FakeShop().visitor, 0)
    trec = Judgments(grades={"q1": {"A1": 3, "A2": 1}})  # any qrels: gains relative to the best grade
    simulator = Simulator(QUERIES, trec)
    assert simulator.relative_gain("q1", "A1") == 1.0 and simulator.relative_gain("q1", "A2") == pytest.approx(1 / 3)
    assert simulator.relative_gain("q1", "nope") == 0.0
