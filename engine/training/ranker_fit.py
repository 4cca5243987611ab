"""Fit the serving ranker's linear weights on graded labels with L-BFGS, and cross-fit it over queries.

The loss is RankNet's weighted logistic loss on pairs (better, worse) of one query's served
candidate pool, each pair weighted by how much swapping the two would change the query's
DCG@10 under the fused (RRF) order (LambdaRank's |delta DCG|): pairs deep in a 600-candidate
pool count little, the head where NDCG@10 is decided counts most, and the fit sees the
same pool serving ranks. scipy's L-BFGS minimises it to convergence (no epoch count or
learning rate to tune).

Cross-fitting (K folds over queries) scores each query with weights fitted without it,
so an estimate made on those scores never saw that query's labels.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from engine.serving.ranker import FEATURES, LinearRanker

RRF_COLUMN = FEATURES.index("rrf")
MAX_PAIRS_PER_QUERY = 4000
DCG_DEPTH = 10
L2 = 1e-3

# One query's candidates: (feature rows (n, len(FEATURES)), gains (n,)).
Group = tuple[np.ndarray, np.ndarray]


def _discounts(order_scores: np.ndarray) -> np.ndarray:
    """1/log2(rank + 1) for ranks within DCG_DEPTH by descending score, 0 below."""
    ranks = np.empty(len(order_scores), dtype=np.int64)
    ranks[np.argsort(-order_scores, kind="stable")] = np.arange(1, len(order_scores) + 1)
    return np.where(ranks <= DCG_DEPTH, 1.0 / np.log2(ranks + 1.0), 0.0)


def pair_rows(groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray]:
    """Feature differences (better - worse) and |delta DCG| weights of every useful pair."""
    diffs, weights = [], []
    for features, gains in groups:
        discount = _discounts(features[:, RRF_COLUMN])
        i, j = np.where(gains[:, None] > gains[None, :])
        weight = (gains[i] - gains[j]) * np.abs(discount[i] - discount[j])
        # A pair neither of whose products is in the fused top still matters a little: the
        # ranker may lift one of them there.
        weight = weight + (gains[i] - gains[j]) * 1e-3
        if len(i) > MAX_PAIRS_PER_QUERY:  # keep the heaviest pairs: large pools do not dominate
            keep = np.argsort(-weight, kind="stable")[:MAX_PAIRS_PER_QUERY]
            i, j, weight = i[keep], j[keep], weight[keep]
        if len(i):
            diffs.append(features[i] - features[j])
            weights.append(weight)
    if not diffs:
        raise ValueError("no pairs with different gains to learn from")
    return np.concatenate(diffs).astype(np.float64), np.concatenate(weights).astype(np.float64)


def minimise_pair_loss(diffs: np.ndarray, pair_weights: np.ndarray, l2: float = L2) -> np.ndarray:
    """Weights w minimising sum_p weight_p * log(1 + exp(-w . diff_p)) + l2/2 |w|^2 (L-BFGS)."""
    weight = pair_weights / pair_weights.sum()

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = diffs @ w
        value = float(weight @ np.logaddexp(0.0, -margin)) + 0.5 * l2 * float(w @ w)
        slope = -weight / (1.0 + np.exp(np.clip(margin, -30, 30)))
        return value, slope @ diffs + l2 * w

    result = minimize(loss, np.zeros(diffs.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return result.x


def fit_linear_ranker(groups: Sequence[Group], l2: float = L2) -> LinearRanker:
    """The linear ranker over FEATURES fitted on the groups; ValueError without pairs."""
    diffs, weights = pair_rows(groups)
    w = minimise_pair_loss(diffs, weights, l2)
    return LinearRanker(weights={name: float(v) for name, v in zip(FEATURES, w, strict=True)})


def fold_of(qid: str, folds: int, seed: str = "kairos-crossfit-1") -> int:
    """A query's fold, from a seeded hash of its id (independent of order)."""
    return int(hashlib.sha256(f"{seed}\n{qid}".encode()).hexdigest(), 16) % folds


def cross_fit(
    groups: Mapping[str, Group], fit: Callable[[list[Group]], LinearRanker], folds: int = 5
) -> dict[str, np.ndarray]:
    """Scores of each query's candidates by a ranker fitted on the other folds only.

    A fold whose complement has no pair to learn from gets no scores (its queries are absent).
    """
    folds = max(2, min(folds, len(groups)))
    fold = {qid: fold_of(qid, folds) for qid in groups}
    scores: dict[str, np.ndarray] = {}
    for k in range(folds):
        held = [qid for qid in groups if fold[qid] == k]
        rest = [groups[qid] for qid in groups if fold[qid] != k]
        if not held or not rest:
            continue
        try:
            ranker = fit(rest)
        except ValueError:
            continue
        for qid in held:
            scores[qid] = ranker.score(groups[qid][0])
    return scores


def ndcg_of_scores(scores: np.ndarray, gains: np.ndarray, ideal: Sequence[float]) -> float:
    """NDCG@10 of candidates ordered by score, against the query's ideal gains (all judged products)."""
    top = np.argsort(-scores, kind="stable")[:DCG_DEPTH]
    dcg = sum(float(gains[i]) / math.log2(rank + 2) for rank, i in enumerate(top))
    best = sum(g / math.log2(rank + 2) for rank, g in enumerate(sorted(ideal, reverse=True)[:DCG_DEPTH]))
    return dcg / best if best > 0 else 0.0
