"""The semantic-similarity floor above which a product found only by meaning counts as matching.

Fitted on judged (query, product) pairs of the train half only: the cosine threshold that
maximizes F1 of "matching" against the Exact judgments (ties: the higher floor, the stricter
count). The Searcher reads it as match_floor; the test half is for reporting the fit's
precision and recall, never for choosing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FloorFit:
    floor: float
    precision: float
    recall: float
    f1: float


def score_floor(scores: Sequence[float], relevant: Sequence[bool], floor: float) -> FloorFit:
    """Precision, recall and F1 of "cosine >= floor" as a prediction of relevance."""
    predicted = [s >= floor for s in scores]
    hits = sum(p and r for p, r in zip(predicted, relevant, strict=True))
    precision = hits / max(1, sum(predicted))
    recall = hits / max(1, sum(relevant))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return FloorFit(floor, precision, recall, f1)


def fit_match_floor(scores: Sequence[float], relevant: Sequence[bool]) -> FloorFit:
    """The floor among the observed scores with the best F1 (the higher one on a tie)."""
    if len(scores) != len(relevant) or not scores:
        raise ValueError("need one relevance flag per score, and at least one pair")
    best: FloorFit | None = None
    for floor in sorted(set(scores), reverse=True):
        fit = score_floor(scores, relevant, floor)
        if best is None or fit.f1 > best.f1:
            best = fit
    assert best is not None
    return best
