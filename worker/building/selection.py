"""Offline choices made while building a version, judged on the train half only:
whether int8 serving is good enough, and the learned ranker's weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.evaluation.judgments import Judgments, Query
from engine.evaluation.metrics import evaluate
from engine.serving.ranker import FEATURES, LinearRanker, fit_pairwise
from engine.serving.searcher import Searcher

INT8_MAX_RELATIVE_DROP = 0.01  # serve int8 only if NDCG@10 falls by less than 1% relative
RANKER_POOL = 50
RRF_COLUMN = FEATURES.index("rrf")


@dataclass(frozen=True)
class LabelSet:
    """Queries with graded judgments keyed by external product id."""

    queries: list[Query]
    judgments: Judgments


def ndcg(searcher: Searcher, labels: LabelSet, mode: str, limit: int = 100) -> float:
    """Mean NDCG@10 of one retrieval mode over the labelled queries."""
    run = {}
    for query in labels.queries:
        hits, _, _ = searcher.retrieve(query.text, limit=limit, mode=mode)
        run[query.qid] = [searcher.cards[pid].external_id for pid, _ in hits]
    return evaluate(run, labels.judgments, [q.qid for q in labels.queries]).ndcg


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


def fit_ranker(searcher: Searcher, labels: LabelSet) -> LinearRanker | None:
    """Fit the linear ranker on the hybrid candidates of the labelled queries; None without pairs."""
    by_external = {card.external_id: pid for pid, card in searcher.cards.items()}
    groups = []
    for query in labels.queries:
        ids, features = searcher.candidate_features(query.text)
        gains_by_pid = {
            by_external[doc]: gain for doc, gain in labels.judgments.gains(query.qid).items() if doc in by_external
        }
        gains = np.array([gains_by_pid.get(pid, 0.0) for pid in ids])
        # Learn to order the head of the fused list, where NDCG@10 is decided; pairs deep in
        # the tail outnumber them and pulled the fit away from it (measured: below RRF on train).
        head = np.argsort(-features[:, RRF_COLUMN], kind="stable")[:RANKER_POOL]
        if len(head) > 1 and gains[head].max() > gains[head].min():
            groups.append((features[head], gains[head]))
    if not groups:
        return None
    try:
        return fit_pairwise(groups, epochs=3000, lr=2.0)
    except ValueError:
        return None
