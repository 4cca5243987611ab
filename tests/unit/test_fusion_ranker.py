"""Reciprocal rank fusion, the linear ranker and the hybrid feature rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.serving.fusion import rank_by, reciprocal_rank_fusion
from engine.serving.hybrid import CandidateSignals, candidate_ids, feature_matrix, fuse
from engine.serving.ranker import FEATURES, LinearRanker, fit_pairwise

COL = {name: i for i, name in enumerate(FEATURES)}


def test_rrf_known_values():
    scores = reciprocal_rank_fusion([[1, 2, 3], [3, 1]])
    assert scores == pytest.approx({1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61})
    assert reciprocal_rank_fusion([[5, 6]], k=0) == pytest.approx({5: 1.0, 6: 0.5})
    assert reciprocal_rank_fusion([]) == {} and reciprocal_rank_fusion([[], []]) == {}


def test_rank_by_orders_by_score_then_id():
    assert rank_by({3: 0.5, 1: 0.5, 2: 0.9}) == [(2, 0.9), (1, 0.5), (3, 0.5)]
    fused = rank_by(reciprocal_rank_fusion([[1, 2, 3], [3, 1]]))
    assert [pid for pid, _ in fused] == [1, 3, 2]  # 1 is ranked 1st and 2nd, 3 is 3rd and 1st


def separable_groups(
    rng: np.random.Generator, queries: int = 30, size: int = 12
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Gains that 'dense' separates with a margin (Exact > 0.7 > Substitute > 0.35 > Irrelevant); other columns noise."""
    bands = {1.0: (0.7, 1.0), 0.1: (0.35, 0.6), 0.0: (0.0, 0.25)}
    groups = []
    for _ in range(queries):
        gains = rng.choice(list(bands), size=size)
        features = rng.uniform(0, 1, size=(size, len(FEATURES))).astype(np.float32)
        features[:, COL["dense"]] = [rng.uniform(*bands[g]) for g in gains]
        groups.append((features, gains))
    return groups


def test_fit_pairwise_orders_a_separable_set():
    ranker = fit_pairwise(separable_groups(np.random.default_rng(3)))
    weights = sorted(ranker.weights.values(), key=abs)
    assert ranker.weights["dense"] == weights[-1] > 3 * abs(weights[-2])  # it found the one signal
    for features, gains in separable_groups(np.random.default_rng(4)):  # unseen queries
        scores = ranker.score(features)
        better, worse = np.where(gains[:, None] > gains[None, :])
        assert (scores[better] > scores[worse]).all()


def test_fit_pairwise_needs_pairs():
    flat = np.zeros((3, len(FEATURES)), dtype=np.float32)
    with pytest.raises(ValueError, match="no pairs"):
        fit_pairwise([(flat, np.ones(3))])


def test_linear_ranker_save_load_round_trip(tmp_path):
    ranker = LinearRanker(weights={"dense": 1.5, "bm25": -0.25, "rating": 0.125})
    path = tmp_path / "ranker.json"
    ranker.save(path)
    loaded = LinearRanker.load(path)
    assert loaded.weights == ranker.weights
    features = np.eye(len(FEATURES), dtype=np.float32)
    assert np.allclose(loaded.score(features), ranker.vector())
    assert loaded.score(features)[COL["dense"]] == pytest.approx(1.5)


def test_linear_ranker_load_ignores_unknown_features(tmp_path):
    path = tmp_path / "ranker.json"
    path.write_text('{"features": ["dense", "retired_signal"], "weights": {"dense": "2", "retired_signal": 9}}')
    assert LinearRanker.load(path).weights == {"dense": 2.0}


DENSE = [(1, 0.9), (2, 0.5)]
LEXICAL = [(2, 10.0), (3, 5.0)]
SIGNALS = {
    1: CandidateSignals(4.0, 0, "Steel Water Bottle"),
    2: CandidateSignals(None, 100, "water filter"),
    3: CandidateSignals(5.0, 1_000_000, "Wool socks"),
}


def test_feature_matrix_columns():
    ids = candidate_ids(DENSE, LEXICAL)
    assert ids == [1, 2, 3]
    rows = feature_matrix("water bottles", ids, DENSE, LEXICAL, SIGNALS, dense_scores={3: 0.25})
    assert rows.shape == (3, len(FEATURES)) and rows.dtype == np.float32
    assert rows[:, COL["dense"]] == pytest.approx([0.9, 0.5, 0.25])  # 3 from the exact cosines
    assert rows[:, COL["bm25"]] == pytest.approx([0.0, 1.0, 0.5])  # divided by the top BM25 score
    assert rows[:, COL["in_both"]].tolist() == [0.0, 1.0, 0.0]
    assert rows[:, COL["rating"]] == pytest.approx([0.8, 0.0, 1.0])  # rating / 5, unknown rating 0
    assert rows[:, COL["popularity"]] == pytest.approx([0.0, math.log1p(100) / math.log1p(1_000_000), 1.0])
    assert rows[:, COL["rrf"]] == pytest.approx([60 / 61, 60 / 62 + 60 / 61, 60 / 62])
    assert rows[:, COL["dense_rr"]] == pytest.approx([10 / 11, 10 / 12, 0.0])
    assert rows[:, COL["lexical_rr"]] == pytest.approx([0.0, 10 / 11, 10 / 12])
    # Share of query words in the title, case-insensitive; a plural query word matches a singular title word.
    assert rows[:, COL["title_match"]] == pytest.approx([1.0, 0.5, 0.0])
    assert not rows[:, [COL["click"], COL["purchase"]]].any()


def test_feature_matrix_takes_the_heads_predictions_from_the_signals():
    signals = {**SIGNALS, 1: CandidateSignals(4.0, 0, "Steel Water Bottle", click=0.7, purchase=0.2)}
    signals[3] = CandidateSignals(5.0, 10, "Wool socks", click=0.1)
    rows = feature_matrix("water bottles", [1, 2, 3], DENSE, LEXICAL, signals)
    assert rows[:, COL["click"]] == pytest.approx([0.7, 0.0, 0.1])  # 2 was not scored: 0
    assert rows[:, COL["purchase"]] == pytest.approx([0.2, 0.0, 0.0])
    by_click = fuse("water bottles", DENSE, LEXICAL, signals, LinearRanker(weights={"click": 1.0}))
    assert [pid for pid, _ in by_click] == [1, 3, 2]


def test_feature_matrix_edge_cases():
    rows = feature_matrix("", [7, 8], [], [(7, 0.0)], {})
    assert rows[:, COL["bm25"]].tolist() == [0.0, 0.0]  # a zero top score must not divide by zero
    assert not rows[:, COL["rating"]].any() and not rows[:, COL["dense"]].any()
    assert not rows[:, COL["title_match"]].any()  # no query words, no signals
    assert rows[:, COL["lexical_rr"]] == pytest.approx([10 / 11, 0.0])


def test_fuse_uses_rrf_without_a_ranker_and_the_ranker_with_one():
    assert [pid for pid, _ in fuse("water bottles", DENSE, LEXICAL, SIGNALS, None)] == [2, 1, 3]
    by_rating = fuse("water bottles", DENSE, LEXICAL, SIGNALS, LinearRanker(weights={"rating": 1.0}))
    assert [pid for pid, _ in by_rating] == [3, 1, 2]
    assert by_rating[0][1] == pytest.approx(1.0)
    by_title = fuse("water bottles", DENSE, LEXICAL, SIGNALS, LinearRanker(weights={"title_match": 1.0}))
    assert [pid for pid, _ in by_title] == [1, 2, 3]
