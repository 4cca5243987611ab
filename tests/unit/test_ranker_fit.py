"""Fitting the serving ranker with L-BFGS and cross-fitting it over queries (engine.training.ranker_fit)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.serving.ranker import FEATURES
from engine.training.ranker_fit import (
    cross_fit,
    fit_linear_ranker,
    fold_of,
    minimise_pair_loss,
    ndcg_of_scores,
    pair_rows,
)


def memorable_groups(queries: int = 8) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each query's one relevant product (listed last) is marked by a feature column of that query's own."""
    groups = {}
    for q in range(queries):
        features = np.zeros((3, len(FEATURES)), dtype=np.float32)
        features[2, q] = 1.0
        groups[f"q{q}"] = (features, np.array([0.0, 0.0, 1.0]))
    return groups


def test_lbfgs_reaches_the_minimum_of_a_convex_pair_loss():
    rng = np.random.default_rng(0)
    diffs = rng.normal(size=(400, 4))
    truth = np.array([2.0, -1.0, 0.5, 0.0])
    keep = (diffs @ truth + rng.normal(scale=0.5, size=400)) > 0  # noisy: a finite optimum exists
    diffs = np.where(keep[:, None], diffs, -diffs)
    w = minimise_pair_loss(diffs, np.ones(len(diffs)))
    margin = diffs @ w
    gradient = -(1 / (1 + np.exp(margin))) @ diffs / len(diffs) + 1e-3 * w
    assert np.abs(gradient).max() < 1e-4  # a stationary point, not a fixed number of steps
    assert np.corrcoef(w, truth)[0, 1] > 0.95


def test_the_fit_orders_the_head_it_will_serve():
    groups = memorable_groups()
    ranker = fit_linear_ranker(list(groups.values()))
    for features, gains in groups.values():
        assert ndcg_of_scores(ranker.score(features), gains, gains.tolist()) == 1.0


def test_cross_fitting_never_lets_a_querys_own_labels_into_its_scores():
    groups = memorable_groups()
    scores = cross_fit(groups, fit_linear_ranker, folds=4)
    assert set(scores) == set(groups)
    for qid, (_, gains) in groups.items():
        # Only that query's own label could lift its relevant product (its column is its own):
        # scored by a ranker that never saw it, the product stays last.
        assert ndcg_of_scores(scores[qid], gains, gains.tolist()) == pytest.approx(0.5)


def test_folds_are_seeded_by_query_id_not_order():
    assert [fold_of(f"q{i}", 5) for i in range(20)] == [fold_of(f"q{i}", 5) for i in range(20)]
    assert len({fold_of(f"q{i}", 5) for i in range(50)}) == 5


def test_without_pairs_there_is_nothing_to_fit():
    with pytest.raises(ValueError):
        pair_rows([(np.zeros((3, len(FEATURES))), np.ones(3))])


def test_the_l2_strength_is_the_one_that_scores_best_out_of_fold():
    from worker.building.selection import L2_GRID, choose_l2

    rng = np.random.default_rng(3)
    groups, ideals = {}, {}
    for q in range(12):  # one shared signal (column 0) and noise
        features = rng.normal(size=(20, len(FEATURES))).astype(np.float32)
        gains = (features[:, 0] + rng.normal(scale=0.3, size=20) > 0.8).astype(float)
        groups[f"q{q}"], ideals[f"q{q}"] = (features, gains), gains.tolist()

    def out_of_fold(l2: float) -> float:
        scores = cross_fit(groups, lambda rest: fit_linear_ranker(rest, l2), folds=5)
        return sum(ndcg_of_scores(scores[q], groups[q][1], ideals[q]) for q in scores) / len(scores)

    by_l2 = {l2: out_of_fold(l2) for l2 in L2_GRID}
    assert choose_l2(groups, ideals) == max(by_l2, key=by_l2.get)
    assert max(by_l2.values()) > 0.8  # the shared signal is learned across queries
