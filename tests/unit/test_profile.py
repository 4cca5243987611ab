"""Session profiles (engine.ranking.profile): what a shopper's recent interactions say about them."""

from __future__ import annotations

import numpy as np
import pytest

from engine.ranking.profile import (
    ACTION_WEIGHTS,
    BAND_MARGIN,
    PROFILE_HALF_LIFE,
    Interaction,
    ProfileItem,
    build_profile,
)
from engine.serving.vectors import VectorIndex

T0 = 1_700_000_000.0
ITEMS = {
    1: ProfileItem(brand="Acme", category="home", price=10.0),
    2: ProfileItem(brand="Zenith", category="garden", price=40.0),
    3: ProfileItem(brand="", category="", price=None),
}


def test_no_interactions_no_profile():
    assert build_profile([], ITEMS, None, T0) is None


def test_unknown_products_and_actions_are_ignored():
    assert build_profile([Interaction("click", 99, T0)], ITEMS, None, T0) is None
    assert build_profile([Interaction("impression", 1, T0)], ITEMS, None, T0) is None
    profile = build_profile([Interaction("click", 99, T0), Interaction("click", 1, T0)], ITEMS, None, T0)
    assert profile.brands == {"acme": 1.0} and profile.categories == {"home": 1.0}


def test_a_purchase_outweighs_a_click_at_the_same_time():
    profile = build_profile([Interaction("click", 1, T0), Interaction("purchase", 2, T0)], ITEMS, None, T0)
    click, purchase = ACTION_WEIGHTS["click"], ACTION_WEIGHTS["purchase"]
    assert purchase > ACTION_WEIGHTS["add_to_cart"] > click
    assert profile.brands == {"acme": pytest.approx(click / 4), "zenith": pytest.approx(purchase / 4)}
    assert profile.categories["garden"] > profile.categories["home"]


def test_recent_interactions_weigh_more():
    # Two clicks, one a half-life old: the newer brand holds two thirds of the attention.
    old, new = Interaction("click", 1, T0 - PROFILE_HALF_LIFE), Interaction("click", 2, T0)
    profile = build_profile([old, new], ITEMS, None, T0)
    assert profile.brands == {"zenith": pytest.approx(2 / 3), "acme": pytest.approx(1 / 3)}
    # A purchase long ago counts less than a click just now.
    stale = build_profile([Interaction("purchase", 1, T0 - 4 * PROFILE_HALF_LIFE), new], ITEMS, None, T0)
    assert stale.brands["zenith"] > stale.brands["acme"]


def test_shares_sum_to_one_and_skip_blank_brands():
    events = [Interaction("click", 1, T0), Interaction("add_to_cart", 2, T0), Interaction("purchase", 3, T0)]
    profile = build_profile(events, ITEMS, None, T0)
    assert sum(profile.brands.values()) == pytest.approx(1.0)
    assert sum(profile.categories.values()) == pytest.approx(1.0)
    assert "" not in profile.brands and "" not in profile.categories
    assert profile.interactions == 3


def test_the_price_band_spans_the_prices_with_a_margin():
    profile = build_profile([Interaction("click", 1, T0), Interaction("click", 2, T0)], ITEMS, None, T0)
    assert profile.price_band == (pytest.approx(10.0 / BAND_MARGIN), pytest.approx(40.0 * BAND_MARGIN))
    unpriced = build_profile([Interaction("click", 3, T0)], ITEMS, None, T0)
    assert unpriced.price_band is None and unpriced.brands == {} and unpriced.categories == {}


def test_the_profile_vector_is_the_weighted_mean_of_product_vectors():
    vectors = VectorIndex(3)
    vectors.build([1, 2], np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32))
    events = [Interaction("click", 1, T0), Interaction("purchase", 2, T0), Interaction("click", 3, T0)]
    profile = build_profile(events, ITEMS, vectors.lookup, T0)
    expected = np.array([1.0, 3.0, 0.0]) / np.sqrt(10.0)  # product 3 has no vector: left out
    assert np.allclose(profile.vector, expected, atol=1e-6)
    assert np.linalg.norm(profile.vector) == pytest.approx(1.0, abs=1e-6)
    assert build_profile([Interaction("click", 3, T0)], ITEMS, vectors.lookup, T0).vector is None
    assert build_profile(events, ITEMS, None, T0).vector is None
