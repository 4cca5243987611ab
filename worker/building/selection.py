"""Offline choices made while building a version, never on the test half: whether int8 serving is
good enough, the learned ranker's weights, and which pipeline serves.

Every figure here is computed with the serving candidate count (the searcher's, i.e.
KAIROS_SEARCH_CANDIDATES per retriever), and the ranker is fitted on the same pool it ranks
when serving. The served pipeline is chosen on validation by paired tests (choose_pipeline):
the fitted ranker serves only when it is non-inferior to RRF and no retriever alone is shown
better; a retriever alone shown better than the fusion serves alone, as a one-feature ranker
(its reciprocal rank), so a weak retriever never drags the result below the better one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.evaluation.label_sets import LabelSet
from engine.evaluation.metrics import evaluate
from engine.evaluation.paired import PairedComparison, paired_bootstrap
from engine.serving.ranker import LinearRanker
from engine.serving.searcher import Searcher
from engine.training.ranker_fit import L2, cross_fit, fit_linear_ranker, ndcg_of_scores

__all__ = ["LabelSet", "choose_pipeline", "choose_variant", "fit_ranker", "ndcg", "per_query_ndcg"]

INT8_MAX_RELATIVE_DROP = 0.01  # serve int8 only if NDCG@10 falls by less than 1% relative
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
CROSS_FIT_FOLDS = 5
SELECTION_MARGIN = 0.01  # absolute NDCG@10 a fitted ranker may trail an alternative by (KAIROS_SELECTION_MARGIN)
# A single retriever served through the ranker: its reciprocal rank alone orders the candidates.
SINGLE = {"lexical": LinearRanker(weights={"lexical_rr": 1.0}), "dense": LinearRanker(weights={"dense_rr": 1.0})}


def per_query_ndcg(searcher: Searcher, labels: LabelSet, mode: str) -> dict[str, float]:
    """NDCG@10 of one retrieval mode per labelled query, with the serving candidate count."""
    run = {}
    for query in labels.queries:
        hits, _, _ = searcher.retrieve(query.text, limit=searcher.candidates, mode=mode)
        run[query.qid] = [searcher.cards[pid].external_id for pid, _ in hits]
    return {s.qid: s.ndcg for s in evaluate(run, labels.judgments, [q.qid for q in labels.queries]).per_query}


def ndcg(searcher: Searcher, labels: LabelSet, mode: str) -> float:
    """Mean NDCG@10 of one retrieval mode over the labelled queries."""
    scores = per_query_ndcg(searcher, labels, mode)
    return sum(scores.values()) / len(scores) if scores else 0.0


def choose_variant(searcher: Searcher, labels: LabelSet, attach: Callable[[str], None]) -> tuple[str, dict]:
    """Compare dense NDCG@10 with the fp32 and int8 query encoders; int8 only within the margin."""
    scores = {}
    for variant in ("fp32", "int8"):
        attach(variant)
        scores[variant] = ndcg(searcher, labels, "dense")
    drop = (scores["fp32"] - scores["int8"]) / scores["fp32"] if scores["fp32"] > 0 else 0.0
    chosen = "int8" if drop < INT8_MAX_RELATIVE_DROP else "fp32"
    return chosen, {
        "dense_ndcg10_fp32": scores["fp32"],
        "dense_ndcg10_int8": scores["int8"],
        "int8_relative_drop": drop,
        "serve_variant": chosen,
    }


def ranker_groups(searcher: Searcher, labels: LabelSet) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per query: the served candidate pool's features and each candidate's gain."""
    by_external = {card.external_id: pid for pid, card in searcher.cards.items()}
    groups = {}
    for query in labels.queries:
        ids, features = searcher.candidate_features(query.text)
        gains_by_pid = {
            by_external[doc]: gain for doc, gain in labels.judgments.gains(query.qid).items() if doc in by_external
        }
        gains = np.array([gains_by_pid.get(pid, 0.0) for pid in ids])
        if len(ids) > 1 and gains.max() > gains.min():
            groups[query.qid] = (features, gains)
    return groups


def choose_l2(groups: dict[str, tuple[np.ndarray, np.ndarray]], ideals: dict[str, list[float]]) -> float:
    """The L2 strength whose cross-fitted rankers (K folds over the fit queries) score best out of fold.

    Each query is scored by a ranker fitted without it, so the choice never sees validation
    and never rewards memorising a query's own labels.
    """
    best, best_score = L2_GRID[0], -1.0
    for l2 in L2_GRID:
        scores = cross_fit(groups, lambda rest, l2=l2: fit_linear_ranker(rest, l2), folds=CROSS_FIT_FOLDS)
        if not scores:
            continue
        value = sum(ndcg_of_scores(scores[q], groups[q][1], ideals[q]) for q in scores) / len(scores)
        if value > best_score:
            best, best_score = l2, value
    return best


def fit_ranker(searcher: Searcher, labels: LabelSet) -> LinearRanker | None:
    """Fit the linear ranker on the served candidate pools of the labelled queries; None without pairs.

    Its L2 strength is chosen by cross-fitting over those queries (choose_l2).
    """
    groups = ranker_groups(searcher, labels)
    if not groups:
        return None
    ideals = {qid: list(labels.judgments.gains(qid).values()) for qid in groups}
    try:
        return fit_linear_ranker(list(groups.values()), choose_l2(groups, ideals) if len(groups) > 2 else L2)
    except ValueError:
        return None


def _mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores) if scores else 0.0


def choose_pipeline(
    scores: dict[str, dict[str, float]], margin: float = SELECTION_MARGIN
) -> tuple[str, dict[str, PairedComparison]]:
    """The pipeline to serve from per-query validation NDCG of 'lexical', 'dense', 'rrf' and maybe 'ranker'.

    The fitted ranker serves when its mean is at least RRF's, it is non-inferior to RRF (the
    paired interval's lower end above minus the margin), and no retriever alone is shown better
    than it (an interval entirely above 0). Otherwise RRF serves, unless a retriever alone is
    shown better than RRF: then that retriever serves alone. A single retriever must be shown
    better to replace a fusion, so with few validation queries the fusion stays; with many, a
    weak retriever can no longer drag the served result below the better one.
    Returns the choice and the paired comparisons that decided it.
    """
    singles = ("lexical", "dense")
    if "ranker" in scores:
        tests = {rival: paired_bootstrap(scores["ranker"], scores[rival], margin) for rival in ("rrf", *singles)}
        beaten = any(tests[mode].high < 0 for mode in singles)
        if tests["rrf"].passed and not beaten and _mean(scores["ranker"]) >= _mean(scores["rrf"]):
            return "ranker", tests
    best = max(singles, key=lambda mode: (_mean(scores[mode]), mode == "lexical"))
    against = paired_bootstrap(scores[best], scores["rrf"], margin)
    if against.low > 0:
        other = "dense" if best == "lexical" else "lexical"
        return best, {"rrf": against, other: paired_bootstrap(scores[best], scores[other], margin)}
    return "rrf", {mode: paired_bootstrap(scores["rrf"], scores[mode], margin) for mode in singles}
