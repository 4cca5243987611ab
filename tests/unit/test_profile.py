"""Session profiles (engine.ranking.profile): what a shopper's recent interactions say about them."""

from __future__ import annotations

import numpy as np
import pytest

from engine.ranking.board import SignalBoard
from engine.ranking.context import CONTEXT_FEATURES, ContextSettings, ProductFacts, context_matrix
from engine.ranking.profile import (
    ACTION_WEIGHTS,
    AFFINITY_RANGE,
    BAND_MARGIN,
    PROFILE_HALF_LIFE,
    Exposure,
    Interaction,
    ProfileItem,
    affinity,
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


# Affinity against exposure: engaged minus the visitor's rate times how much each brand was looked at.


def test_affinity_is_engagement_beyond_what_exposure_predicts():
    # 3 engaged over 2 examinations: rate 1.5; acme expected 0.75 of its 3, zenith 2.25 of its 0.
    assert affinity({"acme": 3.0}, {"acme": 0.5, "zenith": 1.5}) == {
        "acme": pytest.approx(2.25),
        "zenith": pytest.approx(-2.25),
    }
    # Engaged exactly at the visitor's rate: no affinity either way.
    assert affinity({"acme": 1.0, "zenith": 2.0}, {"acme": 1.0, "zenith": 2.0}) == {"acme": 0.0, "zenith": 0.0}


def test_affinity_is_clipped_and_empty_without_evidence():
    low, high = AFFINITY_RANGE
    assert affinity({"acme": 20.0}, {"acme": 1.0, "zenith": 1.0}) == {"acme": high, "zenith": low}
    assert affinity({}, {"acme": 1.0}) == {}
    assert affinity({"acme": 1.0}, {}) == {}


def page(*pids: int, at: float = T0) -> list[Exposure]:
    return [Exposure(pid, position, at) for position, pid in enumerate(pids, start=1)]


def test_a_click_deep_on_the_page_says_more_than_one_at_the_top():
    shown = [Exposure(1, 1, T0), Exposure(2, 10, T0)]  # examined 1 and 0.1: rate 1 / 1.1 for one click
    deep = build_profile([Interaction("click", 2, T0)], ITEMS, None, T0, exposures=shown)
    top = build_profile([Interaction("click", 1, T0)], ITEMS, None, T0, exposures=shown)
    assert deep.brand_affinity == {"zenith": pytest.approx(1 - 0.1 / 1.1), "acme": pytest.approx(-1 / 1.1)}
    assert top.brand_affinity == {"acme": pytest.approx(1 - 1 / 1.1), "zenith": pytest.approx(-0.1 / 1.1)}
    assert deep.category_affinity == {"garden": pytest.approx(1 - 0.1 / 1.1), "home": pytest.approx(-1 / 1.1)}
    # The shares of engagement cannot tell the two apart.
    assert deep.brands == {"zenith": 1.0} and top.brands == {"acme": 1.0}


def test_exposure_weighs_actions_decays_and_skips_blank_brands():
    # Purchase (3) of acme shown 2nd now; zenith shown 1st a half-life ago (0.5); product 3 has no brand.
    shown = [*page(2, at=T0 - PROFILE_HALF_LIFE), Exposure(1, 2, T0), Exposure(3, 3, T0)]
    profile = build_profile([Interaction("purchase", 1, T0)], ITEMS, None, T0, exposures=shown)
    rate = 3.0 / (0.5 + 0.5)
    assert profile.brand_affinity == {"acme": pytest.approx(3.0 - rate * 0.5), "zenith": pytest.approx(-rate * 0.5)}
    assert "" not in profile.brand_affinity and "" not in profile.category_affinity


def test_never_shown_brands_stay_out_and_an_unshown_engaged_product_counts_as_looked_at():
    # Product 2 engaged with no impression read (a product page): examined once, like acme shown first.
    profile = build_profile([Interaction("click", 2, T0)], ITEMS, None, T0, exposures=page(1))
    assert profile.brand_affinity == {"zenith": pytest.approx(0.5), "acme": pytest.approx(-0.5)}
    assert "cobalt" not in profile.brand_affinity
    # Exposure alone makes no profile: nothing engaged, nothing to weigh it against.
    assert build_profile([], ITEMS, None, T0, exposures=page(1, 2)) is None


def test_without_exposures_the_features_read_the_shares():
    profile = build_profile([Interaction("click", 1, T0)], ITEMS, None, T0)
    assert profile.brand_affinity is None and profile.category_affinity is None
    against = build_profile([Interaction("click", 1, T0)], ITEMS, None, T0, exposures=page(2, 1))
    facts = {1: ProductFacts(brand="Acme", category="Home > Bath"), 2: ProductFacts(brand="Zenith", category="Garden")}
    columns = [CONTEXT_FEATURES.index("brand_affinity"), CONTEXT_FEATURES.index("category_affinity")]
    for built, expected in ((profile, [[1.0, 1.0], [0.0, 0.0]]), (against, [[2 / 3, 2 / 3], [-2 / 3, -2 / 3]])):
        rows, _ = context_matrix([1, 2], "", SignalBoard(), facts, T0, ContextSettings(), built)
        assert rows[:, columns].tolist() == [[pytest.approx(v) for v in row] for row in expected]
