"""Ranking metrics against values computed by hand, and the TREC run format."""

from __future__ import annotations

import io
import math

import ir_measures
import pytest
from ir_measures import Qrel, nDCG

from engine.evaluation.judgments import ESCI_GAINS, Judgments
from engine.evaluation.metrics import dcg, evaluate, ndcg_at_k, write_trec_run

ESCI = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}


def esci_judgments(grades: dict[str, dict[str, int]]) -> Judgments:
    return Judgments(grades=grades, rel_level=100, gain_map=ESCI_GAINS)


def test_dcg_by_hand():
    # 1/log2(2) + 0.5/log2(3) + 0.25/log2(4) = 1 + 0.315465 + 0.125
    assert dcg([1.0, 0.5, 0.25]) == pytest.approx(1.4404649, abs=1e-6)
    assert dcg([]) == 0.0


def test_ndcg_esci_gains_by_hand():
    # Ranking S, unjudged, E, C (I judged, not retrieved).
    # DCG  = 0.1/1 + 0 + 1.0/log2(4) + 0.01/log2(5) = 0.1 + 0.5 + 0.0043068 = 0.6043068
    # IDCG = 1.0/1 + 0.1/log2(3) + 0.01/log2(4) + 0 = 1 + 0.0630930 + 0.005 = 1.0680930
    assert ndcg_at_k(["S", "x", "E", "C"], ESCI) == pytest.approx(0.6043068 / 1.0680930, abs=1e-6)
    assert ndcg_at_k(["S", "x", "E", "C"], ESCI) == pytest.approx(0.565781, abs=1e-6)


def test_ndcg_edges():
    assert ndcg_at_k(["E", "S", "C", "I"], ESCI) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "E"], {"E": 1.0}) == pytest.approx(1 / math.log2(3))  # 0.6309298
    assert ndcg_at_k([], {"E": 1.0}) == 0.0
    assert ndcg_at_k(["E"], {"I": 0.0}) == 0.0  # no gain to find: 0, not a division by zero
    # The cutoff: a gain at rank 11 does not count; ten Exact at the top of twelve is perfect.
    assert ndcg_at_k([f"x{i}" for i in range(10)] + ["E"], {"E": 1.0}) == 0.0
    twelve = {f"e{i}": 1.0 for i in range(12)}
    assert ndcg_at_k([f"e{i}" for i in range(10)], twelve) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "E"], {"E": 1.0}, k=1) == 0.0


def test_ndcg_agrees_with_trec_eval_on_scaled_integer_grades():
    # NDCG is scale-free, so trec_eval on the raw ratings (100/10/1/0) must give the same numbers.
    grades = {"q1": {"a": 100, "b": 10, "c": 1, "d": 0, "e": 100}, "q2": {"a": 10, "z": 1}}
    run = {"q1": ["d", "b", "x", "a", "c", "y", "e"], "q2": ["z", "y", "a"]}
    ours = evaluate(run, esci_judgments(grades), ["q1", "q2"])
    qrels = [Qrel(q, d, g) for q, docs in grades.items() for d, g in docs.items()]
    scored = [ir_measures.ScoredDoc(q, d, float(-i)) for q, docs in run.items() for i, d in enumerate(docs)]
    theirs = {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 10], qrels, scored)}
    assert {s.qid: s.ndcg for s in ours.per_query} == pytest.approx(theirs)


def test_mrr_and_recall_count_exact_only():
    grades = {"q": {"s": 10, "e1": 100, "e2": 100, "c": 1}}
    report = evaluate({"q": ["s", "c", "e1"]}, esci_judgments(grades), ["q"])
    (scores,) = report.per_query
    assert scores.rr == pytest.approx(1 / 3)  # the Substitute at rank 1 is not relevant
    assert scores.recall == pytest.approx(1 / 2)  # e1 of {e1, e2}


def test_mrr_cutoff_10_and_recall_cutoff_100():
    grades = {"q": {"e1": 100, "e2": 100}}
    ranking = [f"x{i}" for i in range(10)] + ["e1"] + [f"y{i}" for i in range(89)] + ["e2"]
    (scores,) = evaluate({"q": ranking}, esci_judgments(grades), ["q"]).per_query
    assert scores.rr == 0.0  # e1 at rank 11
    assert scores.recall == pytest.approx(0.5)  # e2 at rank 101


def test_our_order_counts_not_docid_order():
    # trec_eval re-sorts by score and breaks ties by docid; the run order must win either way round.
    for first, second in (("z", "a"), ("a", "z")):
        judgments = Judgments(grades={"q": {first: 1}})
        (scores,) = evaluate({"q": [first, second]}, judgments, ["q"]).per_query
        assert scores.rr == 1.0


def test_report_means_include_queries_with_no_results():
    judgments = Judgments(grades={"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}})
    report = evaluate({"q1": ["a"], "q2": ["x", "b"], "q3": []}, judgments, ["q1", "q2", "q3"])
    assert report.count == 3
    assert [s.qid for s in report.per_query] == ["q1", "q2", "q3"]
    assert [s.rr for s in report.per_query] == pytest.approx([1.0, 0.5, 0.0])
    assert report.mrr == pytest.approx(0.5)
    assert report.recall == pytest.approx(2 / 3)
    assert report.ndcg == pytest.approx((1 + 1 / math.log2(3)) / 3)


def test_duplicate_docids_count_once():
    (scores,) = evaluate({"q": ["a", "a", "b"]}, Judgments(grades={"q": {"b": 1}}), ["q"]).per_query
    assert scores.rr == pytest.approx(0.5)
    assert scores.ndcg == pytest.approx(1 / math.log2(3))


def test_write_trec_run():
    out = io.StringIO()
    assert write_trec_run({"q1": ["b", "a", "b"], "q2": ["c"]}, out, tag="kairos-lexical") == 3
    assert out.getvalue().splitlines() == [
        "q1 Q0 b 1 2 kairos-lexical",
        "q1 Q0 a 2 1 kairos-lexical",
        "q2 Q0 c 1 1 kairos-lexical",
    ]
