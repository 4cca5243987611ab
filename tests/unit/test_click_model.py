"""The position-based click model recovers known examination propensities from synthetic logs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.training.click_model import decreasing, fit_pbm, identified_or_curve, uniform_model


def synthetic_log(theta: np.ndarray, sessions: int, seed: int, shuffle: bool = True):
    """Clicks drawn from a PBM with examination theta and random attractiveness per (query, product)."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.05, 0.95, size=(30, 40))
    rows: tuple[list, list, list, list] = ([], [], [], [])
    for _ in range(sessions):
        query = int(rng.integers(30))
        shown = rng.permutation(40)[: len(theta)] if shuffle else np.arange(len(theta))
        for k, product in enumerate(shown):
            rows[0].append(query)
            rows[1].append(int(product))
            rows[2].append(k + 1)
            rows[3].append(bool(rng.random() < theta[k] * gamma[query, product]))
    return rows


def test_recovers_known_propensities():
    theta = 1.0 / np.arange(1, 9) ** 0.9
    model = fit_pbm(*synthetic_log(theta, 6000, seed=1), max_position=8)
    assert model.relative()[0] == pytest.approx(1.0)
    np.testing.assert_allclose(model.relative(), theta / theta[0], atol=0.04)
    assert model.propensity(3) == pytest.approx(model.relative()[2])
    assert model.propensity(99) == model.propensity(8)  # deeper positions share the last value


def test_a_steeper_curve_is_told_apart():
    steep = np.array([1.0, 0.3, 0.1, 0.05])
    flat = np.array([1.0, 0.9, 0.8, 0.7])
    fitted_steep = fit_pbm(*synthetic_log(steep, 4000, seed=2), max_position=4).relative()
    fitted_flat = fit_pbm(*synthetic_log(flat, 4000, seed=2), max_position=4).relative()
    np.testing.assert_allclose(fitted_steep, steep, atol=0.05)
    np.testing.assert_allclose(fitted_flat, flat, atol=0.08)


def test_likelihood_improves_and_summary_is_json_ready():
    rows = synthetic_log(np.array([1.0, 0.5, 0.25]), 500, seed=3)
    one = fit_pbm(*rows, max_position=3, iterations=1)
    many = fit_pbm(*rows, max_position=3)
    assert many.log_likelihood > one.log_likelihood and many.iterations > 1
    summary = many.as_dict()
    assert summary["impressions"] == 1500 and summary["propensities"][0] == 1.0 and len(summary["propensities"]) == 3


def test_edge_cases():
    assert fit_pbm([], [], [], [], max_position=5).relative().tolist() == [1.0] * 5
    assert uniform_model(3).propensity(2) == 1.0
    with pytest.raises(ValueError, match="same length"):
        fit_pbm(["q"], ["d"], [1, 2], [True])
    with pytest.raises(ValueError, match="max_position"):
        fit_pbm(["q"], ["d"], [1], [True], max_position=0)


def test_a_log_without_position_variation_still_gives_a_decreasing_curve():
    theta = np.array([1.0, 0.5, 0.33, 0.25, 0.2])
    rows = synthetic_log(theta, 300, seed=4, shuffle=False)  # every product always at the same position
    fitted = fit_pbm(*rows, max_position=5)
    assert np.all(np.diff(fitted.relative()) <= 1e-12)
    assert np.allclose(decreasing(np.array([1.0, 0.4, 0.6, 0.2]), np.array([1, 1, 3, 1])), [1.0, 0.55, 0.55, 0.2])


def test_varied_positions_recover_a_known_curve_and_say_identified():
    theta = 1.0 / np.arange(1, 11)  # the simulator's 1/k
    model = fit_pbm(*synthetic_log(theta, 8000, seed=5), max_position=10)
    diagnosis = model.identification
    assert diagnosis.identified and diagnosis.converged and diagnosis.varied_share > 0.9
    assert min(diagnosis.effective) >= 1000
    np.testing.assert_allclose(model.relative(), theta, rtol=0.10)  # within 10% at every rank 1-10
    assert identified_or_curve(model, power=2.0) is model  # identified: the fit is used
    assert model.as_dict()["identification"]["identified"] is True


def test_fixed_positions_say_not_identified_and_fall_back_to_the_configured_curve():
    theta = 1.0 / np.arange(1, 6)
    rows = synthetic_log(theta, 3000, seed=6, shuffle=False)  # every product always at the same position
    model = fit_pbm(*rows, max_position=5)
    assert not model.identification.identified and model.identification.varied_share == 0.0
    assert model.identification.effective == (0, 0, 0, 0, 0)
    used = identified_or_curve(model, power=1.0)
    np.testing.assert_allclose(used.relative(), theta)  # the configured (1/k)^1, not EM's guess
    assert used.source == "(1/k)^1" and used.as_dict()["identification"]["identified"] is False


def test_a_few_moved_pairs_are_not_enough():
    theta = 1.0 / np.arange(1, 6)
    fixed = synthetic_log(theta, 3000, seed=7, shuffle=False)
    moved = synthetic_log(theta, 10, seed=8)  # a handful of pages with shuffled positions
    rows = tuple(a + b for a, b in zip(fixed, moved, strict=True))
    diagnosis = fit_pbm(*rows, max_position=5).identification
    assert 0 < diagnosis.varied_share and not diagnosis.identified


def test_varied_but_sparse_feedback_is_not_called_identified():
    theta = 1.0 / np.arange(1, 11)
    model = fit_pbm(*synthetic_log(theta, 150, seed=9), max_position=10)  # a handful of impressions per pair
    diagnosis = model.identification
    assert diagnosis.varied_share > 0.3 and diagnosis.instability > 0.10 and not diagnosis.identified
    assert identified_or_curve(model, 1.0).source == "(1/k)^1"
