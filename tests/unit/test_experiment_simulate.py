"""Synthetic shoppers (engine.experiments.simulate) and the visitor data container (metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.experiments.metrics import FIELDS, METRICS, VisitorData, all_moments
from engine.experiments.simulate import (
    ShopperModel,
    expected_click_through_rate,
    simulate_clicks,
    simulate_experiment,
    simulate_visitors,
)
from engine.experiments.stats import ratio_and_variance


@pytest.mark.parametrize("lift", [0.0, 0.1, 0.5])
def test_simulated_click_through_rate_matches_its_expectation(lift):
    rng = np.random.default_rng(1)
    data = simulate_visitors(200_000, rng, lift=lift)
    value, variance, _ = ratio_and_variance(all_moments(data, ["click_through_rate"])["click_through_rate"])
    assert abs(value - expected_click_through_rate(lift=lift)) < 4 * np.sqrt(variance)


def test_visitors_differ_so_clicks_within_a_visitor_are_correlated():
    rng = np.random.default_rng(2)
    searches, _, clicks = simulate_clicks(100_000, rng, ShopperModel(mean_searches=5.0))
    assert searches.min() >= 1
    # If searches were independent trials with one shared rate, a visitor's clicks would vary around
    # rate * searches by the per-search variance times their searches; shoppers differ, so they vary far more.
    model = ShopperModel()
    mu, e = model.click_propensity, model.extra_clicks
    per_search_var = mu * (1 + 3 * e + e * e) - (mu * (1 + e)) ** 2
    residual = clicks - clicks.sum() / searches.sum() * searches
    assert residual.var() > 2 * per_search_var * searches.mean()


def test_simulated_visitors_are_internally_consistent():
    data = simulate_visitors(5_000, np.random.default_rng(3))
    assert np.all(data.clicked_searches <= data.searches)
    assert np.all(data.clicked_searches <= data.clicks)
    assert np.all(data.reciprocal_rank_sum <= data.ranked_clicks)
    assert np.all(data.purchases <= data.add_to_carts) and np.all(data.add_to_carts <= data.clicks)
    assert np.all((data.revenue > 0) == (data.purchases > 0))
    moments = all_moments(data)
    assert set(moments) == set(METRICS)
    assert all(moments[m].n == 5_000 for m in moments)


def test_experiment_splits_by_shares_and_days():
    sim = simulate_experiment(30_000, np.random.default_rng(4), shares=(0.2, 0.8), lifts=(0.0, 0.1), days=7)
    sizes = [len(arm) for arm in sim.arms]
    assert sum(sizes) == 30_000 and abs(sizes[0] / 30_000 - 0.2) < 0.01
    assert all(
        days.min() >= 0 and days.max() < 7 and days.size == n for days, n in zip(sim.arrival_day, sizes, strict=True)
    )
    with pytest.raises(ValueError):
        simulate_experiment(10, np.random.default_rng(0), shares=(0.5, 0.5), lifts=(0.1,))


def test_visitor_data_validates_its_arrays():
    with pytest.raises(ValueError, match="differ in length"):
        VisitorData.from_columns({"searches": [1, 2], "clicks": [1]})
    with pytest.raises(ValueError, match="unknown fields"):
        VisitorData.from_columns({"views": [1]})
    data = VisitorData.from_columns({"searches": [1, 2, 3]}, visitor_ids=["a", "b", "c"])
    assert len(data) == 3 and data.totals()["searches"] == 6 and set(data.totals()) == set(FIELDS)
    picked = data.select(np.array([True, False, True]))
    assert picked.visitor_ids == ("a", "c") and list(picked.searches) == [1, 3]
    assert len(VisitorData.empty()) == 0
