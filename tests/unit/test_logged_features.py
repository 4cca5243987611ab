"""The features each impression logs (webapp.services.logged_features): values, rounding and JSON text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.ranking.context import CONTEXT_FEATURES
from engine.ranking.stage import ContextResult
from webapp.services.logged_features import LOGGED, LoggedFeatures, features_json, logged_features

COMPACT = {"separators": (",", ":")}


def staged(matrix: np.ndarray, explore: np.ndarray, head: list[int]) -> ContextResult:
    return ContextResult([(pid, 1.0) for pid in head], head=head, matrix=matrix, explore_values=explore)


@pytest.mark.parametrize("seed", range(3))
def test_the_template_writes_what_json_dumps_writes(seed):
    rng = np.random.default_rng(seed)
    # Signs, zeros, tiny and large magnitudes: every shape of a float's repr.
    values = np.round(rng.normal(size=len(LOGGED)) * 10.0 ** rng.integers(-6, 6, size=len(LOGGED)), 5)
    values[:3] = (0.0, 1.0, -0.0)
    row = LoggedFeatures(values.tolist())
    assert row.json_bytes() == json.dumps(dict(row), **COMPACT).encode()
    assert features_json(row) == features_json(dict(row))  # a plain dict takes json.dumps
    assert json.loads(row.json_bytes()) == dict(zip(LOGGED, values.tolist(), strict=True))
    assert json.dumps(row) == json.dumps(dict(row))  # stored through the JSON column as a dict


def test_each_shown_product_logs_its_rounded_row_or_none():
    matrix = np.array([[0.123456789] * len(CONTEXT_FEATURES), [2.0] * len(CONTEXT_FEATURES)], dtype=np.float32)
    result = staged(matrix, np.array([0.5, 0.0], dtype=np.float32), head=[10, 20])
    logged = logged_features(result, [20, 99, 10])
    assert logged[1] is None  # shown but never featured (past stage 2's pool)
    assert logged[0] == {**dict.fromkeys(CONTEXT_FEATURES, 2.0), "explore": 0.0}
    assert logged[2] == {**dict.fromkeys(CONTEXT_FEATURES, 0.12346), "explore": 0.5}
    assert logged_features(None, [10, 20]) == [None, None]
    assert logged_features(result, [99]) == [None]


def test_logged_features_are_read_only_and_never_write_invalid_json():
    row = LoggedFeatures([0.5] * len(LOGGED))
    with pytest.raises(TypeError):
        row["explore"] = 1.0  # the journal text would no longer say what the dict does
    with pytest.raises(TypeError):
        row.update(explore=1.0)
    assert row["explore"] == 0.5
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            LoggedFeatures([bad] + [0.5] * (len(LOGGED) - 1)).json_bytes()


def test_a_non_finite_feature_is_logged_as_zero_not_as_invalid_json(caplog):
    matrix = np.full((1, len(CONTEXT_FEATURES)), 0.25, dtype=np.float32)
    matrix[0, 3] = np.nan
    matrix[0, 4] = np.inf
    (row,) = logged_features(staged(matrix, np.zeros(1, dtype=np.float32), head=[1]), [1])
    text = row.json_bytes()
    assert json.loads(text)[CONTEXT_FEATURES[3]] == 0.0 and json.loads(text)[CONTEXT_FEATURES[4]] == 0.0
    assert b"NaN" not in text and b"nan" not in text and b"inf" not in text
    assert "non-finite features for products [1]" in caplog.text  # a bug upstream is not silent
