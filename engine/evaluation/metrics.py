"""Ranking metrics per query and on average: NDCG@10 on graded gains, MRR@10 and Recall@100 on binary relevance.

NDCG is computed here because trec_eval (pytrec_eval, hence ir_measures) accepts only integer
relevance, and the ESCI gains are 1.0 / 0.1 / 0.01 / 0. MRR and recall come from ir_measures,
with "relevant" meaning grade >= the judgments' rel_level (ESCI: Exact only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

import ir_measures
from ir_measures import RR, Qrel, R, ScoredDoc

from engine.evaluation.judgments import Judgments

NDCG_K = 10
MRR_K = 10
RECALL_K = 100

Run = Mapping[str, Sequence[str]]  # qid -> docids, best first


@dataclass(frozen=True)
class QueryScores:
    qid: str
    ndcg: float
    rr: float
    recall: float


@dataclass(frozen=True)
class Report:
    """Per-query scores and their means over every evaluated query."""

    per_query: list[QueryScores]

    @property
    def count(self) -> int:
        return len(self.per_query)

    def _mean(self, name: str) -> float:
        return sum(getattr(s, name) for s in self.per_query) / self.count if self.per_query else 0.0

    @property
    def ndcg(self) -> float:
        return self._mean("ndcg")

    @property
    def mrr(self) -> float:
        return self._mean("rr")

    @property
    def recall(self) -> float:
        return self._mean("recall")


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain with linear gains: sum of gain / log2(rank + 1), rank from 1."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int = NDCG_K) -> float:
    """NDCG@k of one ranking; unjudged documents gain 0, and a query with no gain scores 0."""
    ideal = dcg(sorted(gains.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([gains.get(doc, 0.0) for doc in ranking[:k]]) / ideal


def _unique(ranking: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def _binary_scores(run: Mapping[str, list[str]], judgments: Judgments) -> dict[str, dict[str, float]]:
    """RR@10 and R@100 per query from ir_measures; a query it leaves out (empty run) scores 0."""
    rr, recall = RR(rel=judgments.rel_level) @ MRR_K, R(rel=judgments.rel_level) @ RECALL_K
    qrels = [Qrel(qid, doc, grade) for qid in run for doc, grade in judgments.grades.get(qid, {}).items()]
    # trec_eval re-sorts by score and breaks ties by docid; rank-derived scores keep our order.
    scored = [
        ScoredDoc(qid, doc, float(len(ranking) - i)) for qid, ranking in run.items() for i, doc in enumerate(ranking)
    ]
    scores = {qid: {"rr": 0.0, "recall": 0.0} for qid in run}
    for metric in ir_measures.iter_calc([rr, recall], qrels, scored):
        scores[metric.query_id]["rr" if metric.measure == rr else "recall"] = float(metric.value)
    return scores


def evaluate(run: Run, judgments: Judgments, qids: Sequence[str]) -> Report:
    """Score a run on the given queries; a query missing from the run counts as an empty ranking."""
    rankings = {qid: _unique(run.get(qid, ())) for qid in qids}
    binary = _binary_scores(rankings, judgments)
    return Report(
        per_query=[
            QueryScores(
                qid=qid,
                ndcg=ndcg_at_k(rankings[qid], judgments.gains(qid)),
                rr=binary[qid]["rr"],
                recall=binary[qid]["recall"],
            )
            for qid in rankings
        ]
    )


def write_trec_run(run: Run, out: TextIO, tag: str) -> int:
    """Write a run as TREC `qid Q0 docid rank score tag` lines; returns the line count.

    Scores are rank-derived (n, n-1, ..., 1) so trec_eval, which re-sorts by score, keeps the order.
    """
    lines = 0
    for qid, ranking in run.items():
        ranking = _unique(ranking)
        for rank, doc in enumerate(ranking, start=1):
            out.write(f"{qid} Q0 {doc} {rank} {len(ranking) - rank + 1} {tag}\n")
            lines += 1
    return lines
