"""The paired bootstrap gate (engine.evaluation.paired) and the served-pipeline choice it drives."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation.paired import paired_bootstrap
from worker.building.selection import choose_pipeline


def per_query(values) -> dict[str, float]:
    return {f"q{i}": float(v) for i, v in enumerate(values)}


def noisy_baseline(n: int = 60, seed: int = 4) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0.45, 0.25, n), 0, 1)


def test_a_clearly_better_candidate_passes_with_an_interval_above_zero():
    base = noisy_baseline()
    better = np.clip(base + np.random.default_rng(5).normal(0.08, 0.05, len(base)), 0, 1)
    result = paired_bootstrap(per_query(better), per_query(base), margin=0.01)
    assert result.passed and result.low > 0 and result.high > result.low and result.queries == len(base)
    assert result.difference == pytest.approx(float((better - base).mean()))


def test_a_candidate_whose_interval_falls_below_the_margin_is_refused():
    base = noisy_baseline()
    worse = np.clip(base - np.random.default_rng(6).normal(0.05, 0.05, len(base)), 0, 1)
    result = paired_bootstrap(per_query(worse), per_query(base), margin=0.01)
    assert not result.passed and result.low < -0.01 and result.high < 0


def test_a_point_gain_inside_the_noise_does_not_pass_a_zero_margin():
    base = noisy_baseline(n=22)
    # The same mean gain as a point estimate, but most queries lose: the interval straddles 0.
    changes = np.where(np.arange(22) < 4, 0.30, -0.04)
    result = paired_bootstrap(per_query(base + changes), per_query(base), margin=0.0)
    assert result.difference > 0 and result.low < 0 < result.high and not result.passed


def test_the_bootstrap_is_reproducible_and_pairs_by_query():
    a, b = per_query(noisy_baseline(seed=1)), per_query(noisy_baseline(seed=2))
    assert paired_bootstrap(a, b, 0.01) == paired_bootstrap(dict(reversed(a.items())), b, 0.01)
    assert paired_bootstrap({"x": 1.0}, {"y": 0.0}, 0.01).passed is False  # no shared query: nothing judged
    with pytest.raises(ValueError):
        paired_bootstrap(a, b, -0.1)


def test_a_weak_dense_retriever_never_serves_below_bm25():
    lexical = noisy_baseline(n=80)
    dense = np.clip(lexical - 0.25, 0, 1)
    rrf = np.clip(lexical - 0.06 + np.random.default_rng(9).normal(0, 0.02, 80), 0, 1)
    choice, tests = choose_pipeline({"lexical": per_query(lexical), "dense": per_query(dense), "rrf": per_query(rrf)})
    assert choice == "lexical" and tests["rrf"].low > 0
    # A fitted ranker that only matches RRF is refused too: it trails BM25 by more than the margin.
    scores = {"lexical": per_query(lexical), "dense": per_query(dense), "rrf": per_query(rrf), "ranker": per_query(rrf)}
    assert choose_pipeline(scores)[0] == "lexical"


def test_a_ranker_serves_only_when_non_inferior_to_rrf_and_each_retriever():
    rrf = noisy_baseline(n=80)
    lexical, dense = np.clip(rrf - 0.05, 0, 1), np.clip(rrf - 0.08, 0, 1)
    ranker = np.clip(rrf + 0.03, 0, 1)
    scores = {"lexical": per_query(lexical), "dense": per_query(dense), "rrf": per_query(rrf)}
    assert choose_pipeline({**scores, "ranker": per_query(ranker)})[0] == "ranker"
    assert choose_pipeline({**scores, "ranker": per_query(rrf - 0.04)})[0] == "rrf"
    assert choose_pipeline(scores)[0] == "rrf"


def test_a_ranker_no_retriever_is_shown_to_beat_serves_with_few_queries():
    rrf = noisy_baseline(n=22)
    rng = np.random.default_rng(11)
    lexical = np.clip(rrf + rng.normal(0, 0.15, 22), 0, 1)  # a different retriever: wide paired intervals
    ranker = rrf + 0.005
    scores = {"lexical": per_query(lexical), "dense": per_query(rrf - 0.05), "rrf": per_query(rrf)}
    choice, tests = choose_pipeline({**scores, "ranker": per_query(ranker)})
    assert choice == "ranker" and tests["lexical"].low < -0.01 < 0 < tests["lexical"].high
