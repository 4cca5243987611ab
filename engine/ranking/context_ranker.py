"""Stage 2: a linear re-ranker over context features, fitted on logged feedback.

The features of every shown result are logged with its impression, so the ranker learns
how much trending, freshness and the shopper's profile count from what shoppers did on
pages where those features had the values they saw. Clicks are position-biased: pairs are
(engaged result, every less engaged result on the same page) weighted by the inverse
examination propensity of the engaged result's position (Joachims et al., 2017), which
is unbiased for a position-based click model.

The exploration bonus is the one hand-set term: it is a policy (give new products a
chance to earn feedback), bounded by configuration, not a belief fitted from data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.ranking.context import CONTEXT_FEATURES
from engine.serving.ranker import fit_pair_differences

RELEVANCE = CONTEXT_FEATURES.index("relevance")
HOLDOUT_SHARE = 0.2
# The clip of 1/propensity, as fine-tuning's (engine.training.dataset): a rare deep click
# would otherwise weigh up to 1000 times a top one and dominate the fit's variance.
MAX_IPS_WEIGHT = 10.0


def pbm_propensity(position: int, eta: float = 1.0) -> float:
    """Examination probability of a position under a position-based model, (1/k)^eta."""
    return (1.0 / position) ** eta


@dataclass(frozen=True)
class LoggedPage:
    """One results page as logged: features in shown order, and what the shopper did with each row."""

    key: int  # the search id: decides the holdout side stably
    features: np.ndarray  # (n, len(CONTEXT_FEATURES))
    gains: np.ndarray  # (n,) 0 nothing, 1 click, 2 add to cart, 3 purchase
    positions: np.ndarray  # (n,) 1-based positions shown


@dataclass
class ContextRanker:
    weights: dict[str, float] = field(default_factory=dict)
    explore_bonus: float = 0.0

    def vector(self) -> np.ndarray:
        return np.array([self.weights.get(name, 0.0) for name in CONTEXT_FEATURES], dtype=np.float32)

    def scores(self, features: np.ndarray, explore: np.ndarray | None = None) -> np.ndarray:
        scores = features @ self.vector()
        if explore is not None and self.explore_bonus:
            scores = scores + self.explore_bonus * explore
        return scores

    def contributions(self, features: np.ndarray) -> dict[str, float]:
        """Each feature's share of one row's score (weight x value)."""
        return {name: float(w * x) for name, w, x in zip(CONTEXT_FEATURES, self.vector(), features, strict=True)}

    def to_dict(self) -> dict:
        return {"features": list(CONTEXT_FEATURES), "weights": self.weights, "explore_bonus": self.explore_bonus}

    @classmethod
    def from_dict(cls, data: dict) -> ContextRanker:
        weights = {k: float(v) for k, v in data.get("weights", {}).items() if k in CONTEXT_FEATURES}
        return cls(weights=weights, explore_bonus=float(data.get("explore_bonus", 0.0)))


def rerank(ordered_ids: Sequence[int], scores: np.ndarray) -> list[int]:
    """The head re-ordered by score (stable: ties keep the stage-1 order)."""
    order = np.argsort(-scores, kind="stable")
    return [ordered_ids[i] for i in order]


def page_pairs(page: LoggedPage, propensity: Callable[[int], float]) -> tuple[np.ndarray, np.ndarray]:
    """(feature differences, weights) of the page's (more engaged, less engaged) pairs."""
    diffs, weights = [], []
    for i in np.flatnonzero(page.gains > 0):
        worse = np.flatnonzero(page.gains < page.gains[i])
        if len(worse):
            diffs.append(page.features[i] - page.features[worse])
            ips = min(1.0 / max(propensity(int(page.positions[i])), 1e-9), MAX_IPS_WEIGHT)
            weight = (page.gains[i] - page.gains[worse]) * ips
            weights.append(weight)
    if not diffs:
        return np.empty((0, page.features.shape[1])), np.empty(0)
    return np.concatenate(diffs), np.concatenate(weights)


def in_holdout(key: int) -> bool:
    digest = hashlib.sha256(f"context-holdout:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HOLDOUT_SHARE


def _stack(pages: Sequence[LoggedPage], propensity: Callable[[int], float]) -> tuple[np.ndarray, np.ndarray]:
    parts = [page_pairs(p, propensity) for p in pages]
    parts = [(d, w) for d, w in parts if len(w)]
    if not parts:
        return np.empty((0, len(CONTEXT_FEATURES))), np.empty(0)
    return np.concatenate([d for d, _ in parts]), np.concatenate([w for _, w in parts])


def pair_accuracy(weights: np.ndarray, diffs: np.ndarray, pair_weights: np.ndarray) -> float:
    """Weighted share of pairs the weights order correctly (ties count half)."""
    margin = diffs @ weights
    correct = (margin > 0) + 0.5 * (margin == 0)
    return float((pair_weights * correct).sum() / pair_weights.sum())


def pair_log_loss(weights: np.ndarray, diffs: np.ndarray, pair_weights: np.ndarray) -> float:
    """Weighted mean logistic loss of the pairs: the fitted objective, on data it did not see."""
    margin = diffs @ weights
    return float((pair_weights * np.logaddexp(0.0, -margin)).sum() / pair_weights.sum())


@dataclass(frozen=True)
class ContextFit:
    ranker: ContextRanker | None  # None: not enough pairs, or no better than relevance alone
    metrics: dict


def fit_context_ranker(
    pages: Sequence[LoggedPage],
    propensity: Callable[[int], float] = pbm_propensity,
    explore_bonus: float = 0.0,
    min_pairs: int = 50,
    l2: float = 1e-3,
) -> ContextFit:
    """Fit on 80% of the pages; keep the ranker only if it orders held-out pairs better than relevance alone."""
    train = [p for p in pages if not in_holdout(p.key)]
    held = [p for p in pages if in_holdout(p.key)]
    x_train, w_train = _stack(train, propensity)
    x_held, w_held = _stack(held, propensity)
    metrics = {"pages": len(pages), "train_pairs": len(w_train), "holdout_pairs": len(w_held)}
    if len(w_train) < min_pairs or len(w_held) == 0:
        metrics["refused"] = f"too few pairs to fit (train {len(w_train)}, holdout {len(w_held)}; need {min_pairs})"
        return ContextFit(None, metrics)
    full = fit_pair_differences(x_train, w_train, epochs=1500, lr=1.0, l2=l2)
    # The nested baseline: the same fit with the relevance column alone.
    relevance_only = np.zeros_like(full)
    relevance_only[RELEVANCE] = fit_pair_differences(x_train[:, [RELEVANCE]], w_train, epochs=1500, lr=1.0, l2=l2)[0]
    metrics["holdout_loss"] = pair_log_loss(full, x_held, w_held)
    metrics["holdout_loss_relevance_only"] = pair_log_loss(relevance_only, x_held, w_held)
    metrics["holdout_accuracy"] = pair_accuracy(full, x_held, w_held)
    metrics["holdout_accuracy_relevance_only"] = pair_accuracy(relevance_only, x_held, w_held)
    ranker = ContextRanker({n: float(v) for n, v in zip(CONTEXT_FEATURES, full, strict=True)}, explore_bonus)
    # The gate compares the fitted objective on held-out pages: the nested model's log loss.
    # Pair accuracy is reported but too noisy to gate on (a few high-IPS-weight pairs swing it).
    if metrics["holdout_loss"] >= metrics["holdout_loss_relevance_only"]:
        metrics["refused"] = "context features did not beat relevance alone on held-out pairs (log loss)"
        metrics["refused_weights"] = ranker.weights  # kept to explain the refusal
        return ContextFit(None, metrics)
    return ContextFit(ranker, metrics)
