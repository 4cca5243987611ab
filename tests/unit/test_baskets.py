"""Simulated baskets (engine.evaluation.baskets): relations from one split's judgments only."""

from __future__ import annotations

from engine.evaluation.baskets import BasketModel, relations_from, simulate_baskets
from engine.evaluation.judgments import ESCI_GAINS, Judgments, Query

QUERIES = [Query("q1", "knife"), Query("q2", "hose")]
JUDGMENTS = Judgments(
    grades={"q1": {"K1": 100, "K2": 10, "B1": 1, "X": 0}, "q2": {"G1": 100, "G2": 100}}, gain_map=ESCI_GAINS
)


def test_relations_come_from_the_named_queries_only():
    rel = relations_from(QUERIES, JUDGMENTS, {"knife"})
    assert rel.substitutes == {"K1": ("K2",), "K2": ("K1",)}
    assert rel.complements == {"K1": ("B1",)}  # complements of the Exact products
    assert "G1" not in rel.products()  # the other query's products are unknown to this world


def test_baskets_are_seeded_distinct_and_follow_relations():
    rel = relations_from(QUERIES, JUDGMENTS, {"knife", "hose"})
    model = BasketModel(complement=1.0, substitute=0.0, length=(2, 2))
    first = simulate_baskets(rel, 200, seed=3, model=model)
    assert first == simulate_baskets(rel, 200, seed=3, model=model)
    assert all(len(b) == len(set(b)) == 2 for b in first)
    assert all(b[1] == "B1" for b in first if b[0] == "K1")  # K1's one complement, always
