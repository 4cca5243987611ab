"""Freshness, exploration and personal context features, and stage 2 applied to a hit list."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.ranking.board import QUIET, SignalBoard
from engine.ranking.context import (
    CONTEXT_FEATURES,
    CTR_PRIOR,
    CTR_PRIOR_IMPRESSIONS,
    PERSONAL_FEATURES,
    POPULARITY_SCALE,
    QUERY_SCALE,
    ContextSettings,
    ProductFacts,
    context_matrix,
    engagement,
    exploration,
)
from engine.ranking.context_ranker import MAX_IPS_WEIGHT, ContextRanker, LoggedPage, page_pairs
from engine.ranking.decay import trend
from engine.ranking.profile import ShopperProfile
from engine.ranking.stage import SearchContext, apply_context
from engine.serving.searcher import ProductCard
from engine.serving.vectors import VectorIndex

T0 = 1_700_000_000.0
DAY = 86400.0
SETTINGS = ContextSettings(explore_days=14.0, explore_impressions=50.0)
COLUMN = {name: i for i, name in enumerate(CONTEXT_FEATURES)}


def row(facts: ProductFacts, now: float, board: SignalBoard | None = None, profile=None, sims=None) -> dict:
    rows, explore = context_matrix([1], "", board or SignalBoard(), {1: facts}, now, SETTINGS, profile, sims)
    return {**dict(zip(CONTEXT_FEATURES, rows[0].tolist(), strict=True)), "explore": float(explore[0])}


def test_exploration_is_one_for_a_brand_new_unseen_product_and_bounded():
    board = SignalBoard()
    new = ProductFacts(created_at=T0)
    assert exploration(new, board.activity(1, T0), T0, SETTINGS) == 1.0
    # A clock a little behind the product's creation stamp must not lift it above 1.
    assert exploration(new, board.activity(1, T0 - 60), T0 - 60, SETTINGS) == 1.0
    assert exploration(ProductFacts(created_at=None), board.activity(1, T0), T0, SETTINGS) == 0.0
    for age_days in (0.0, 1.0, 7.0, 13.9, 14.0, 400.0):
        value = exploration(ProductFacts(created_at=T0 - age_days * DAY), board.activity(1, T0), T0, SETTINGS)
        assert 0.0 <= value <= 1.0


def test_exploration_decays_with_age_and_with_impressions():
    board = SignalBoard()
    ages = [exploration(ProductFacts(created_at=T0 - d * DAY), board.activity(1, T0), T0, SETTINGS) for d in (0, 7, 14)]
    assert ages == [pytest.approx(1.0), pytest.approx(0.5), 0.0]
    seen = []
    for shown in (0, 50, 150):
        board = SignalBoard()
        for k in range(shown):
            board.add(1, "impression", T0 - 1 + k * 1e-3)
        seen.append(exploration(ProductFacts(created_at=T0), board.activity(1, T0), T0, SETTINGS))
    assert seen[0] == 1.0 and seen[1] == pytest.approx(0.5, rel=1e-3) and seen[2] == pytest.approx(0.25, rel=1e-3)
    assert exploration(ProductFacts(created_at=T0), board.activity(1, T0), T0, ContextSettings(explore_days=0)) == 0


def test_freshness_price_drop_and_back_in_stock_decay():
    facts = ProductFacts(created_at=T0, price_dropped_at=T0, price_drop=0.25, restocked_at=T0)
    now, week, month = row(facts, T0), row(facts, T0 + 7 * DAY), row(facts, T0 + 60 * DAY)
    assert now["freshness"] == 1.0 and now["price_drop"] == pytest.approx(0.25) and now["back_in_stock"] == 1.0
    assert week["price_drop"] == pytest.approx(0.25 * np.exp(-1)) and week["back_in_stock"] == pytest.approx(np.exp(-1))
    assert week["freshness"] == pytest.approx(np.exp(-7 / 30))
    assert month["price_drop"] < 1e-3 and month["back_in_stock"] < 1e-3 and month["freshness"] < now["freshness"]
    never = row(ProductFacts(), T0)
    assert never["freshness"] == never["price_drop"] == never["back_in_stock"] == never["explore"] == 0.0


def test_personal_features_match_the_profile():
    profile = ShopperProfile(
        vector=None, brands={"acme": 0.75, "zenith": 0.25}, categories={"home": 1.0}, price_band=(8.0, 30.0)
    )
    facts = ProductFacts(brand="ACME", category="Home > Bath > Towels", price=12.0)
    features = row(facts, T0, profile=profile, sims={1: 0.6})
    assert features["brand_affinity"] == 0.75 and features["category_affinity"] == 1.0
    assert features["price_fit"] == 1.0 and features["profile_sim"] == pytest.approx(0.6)
    elsewhere = row(ProductFacts(brand="Other", category="Garden", price=90.0), T0, profile=profile)
    assert [elsewhere[name] for name in PERSONAL_FEATURES] == [0.0, 0.0, 0.0, 0.0]


def test_cold_start_has_no_personal_features():
    facts = ProductFacts(brand="Acme", category="Home", price=12.0)
    features = row(facts, T0, profile=None, sims={1: 0.9})
    assert [features[name] for name in PERSONAL_FEATURES] == [0.0, 0.0, 0.0, 0.0]


# Stage 2 over a hit list.


def cards(n: int, **extra) -> dict[int, ProductCard]:
    return {
        i: ProductCard(id=i, external_id=f"P{i}", title=f"Towel {i}", brand="Acme" if i % 2 else "Zenith", **extra)
        for i in range(1, n + 1)
    }


HITS = [(i, 10.0 - i) for i in range(1, 9)]


def test_apply_context_logs_features_without_a_ranker_and_keeps_the_order():
    board = SignalBoard()
    board.add(5, "purchase", T0, query="towel")
    result = apply_context(HITS, cards(8), board, None, SETTINGS, SearchContext(now=T0, query_key="towel"), None)
    assert result.hits == HITS and not result.applied
    assert set(result.features) == set(range(1, 9))
    assert result.features[5][COLUMN["query_affinity"]] > 0
    assert result.features[1][COLUMN["relevance"]] > result.features[8][COLUMN["relevance"]]


def test_a_ranker_on_relevance_alone_reproduces_stage_one_for_a_new_visitor():
    board = SignalBoard()
    for pid in (4, 7):  # activity must not matter to a relevance-only ranker
        board.add(pid, "purchase", T0, query="towel")
    ranker = ContextRanker({"relevance": 2.0})
    context = SearchContext(now=T0, query_key="towel", profile=None)
    result = apply_context(HITS, cards(8), board, ranker, SETTINGS, context, None)
    assert result.applied and [pid for pid, _ in result.hits] == [pid for pid, _ in HITS]
    for features in result.features.values():
        assert [features[COLUMN[name]] for name in PERSONAL_FEATURES] == [0.0, 0.0, 0.0, 0.0]


def test_a_ranker_re_orders_the_head_by_context_and_keeps_the_tail():
    board = SignalBoard()
    for k in range(10):
        board.add(6, "purchase", T0 + k, query="towel")
    ranker = ContextRanker({"relevance": 1.0, "query_affinity": 5.0})
    result = apply_context(
        HITS, cards(8), board, ranker, SETTINGS, SearchContext(now=T0 + 10, query_key="towel"), None, pool=6
    )
    order = [pid for pid, _ in result.hits]
    assert order[0] == 6 and sorted(order[:6]) == [1, 2, 3, 4, 5, 6]
    assert order[6:] == [7, 8]  # beyond the pool stage 1's order stands
    # Another query's shoppers bought nothing: stage 1's order stands there.
    other = apply_context(HITS, cards(8), board, ranker, SETTINGS, SearchContext(now=T0 + 10, query_key="mug"), None)
    assert [pid for pid, _ in other.hits] == [pid for pid, _ in HITS]


def test_the_exploration_bonus_lifts_a_new_product_only_while_it_is_new():
    catalog = cards(8, created_at=T0 - 400 * DAY)
    catalog[8] = ProductCard(id=8, external_id="P8", title="Towel 8", created_at=T0)
    ranker = ContextRanker({"relevance": 1.0}, explore_bonus=1.0)
    fresh = apply_context(HITS, catalog, SignalBoard(), ranker, SETTINGS, SearchContext(now=T0), None)
    stale = apply_context(HITS, catalog, SignalBoard(), ranker, SETTINGS, SearchContext(now=T0 + 20 * DAY), None)
    assert fresh.explore[8] == 1.0 and [pid for pid, _ in fresh.hits][0] == 8
    assert stale.explore[8] == 0.0 and [pid for pid, _ in stale.hits] == [pid for pid, _ in HITS]


def test_a_profile_lifts_products_like_what_the_shopper_engaged_with():
    rng = np.random.default_rng(3)
    vectors = VectorIndex(8)
    matrix = rng.normal(size=(8, 8)).astype(np.float32)
    vectors.build(list(range(1, 9)), matrix)
    profile = ShopperProfile(vector=matrix[6] / np.linalg.norm(matrix[6]), brands={"acme": 1.0})
    ranker = ContextRanker({"relevance": 0.1, "profile_sim": 5.0})
    result = apply_context(HITS, cards(8), SignalBoard(), ranker, SETTINGS, SearchContext(T0, "", profile), vectors)
    assert result.hits[0][0] == 7
    assert result.features[7][COLUMN["profile_sim"]] == pytest.approx(1.0, abs=1e-5)
    assert result.features[1][COLUMN["brand_affinity"]] == 1.0 and result.features[2][COLUMN["brand_affinity"]] == 0


def test_hits_without_a_card_are_left_out_of_stage_two():
    result = apply_context(
        [(99, 5.0)], cards(2), SignalBoard(), ContextRanker({"relevance": 1.0}), SETTINGS, SearchContext(now=T0), None
    )
    assert result.hits == [(99, 5.0)] and result.features == {} and not result.applied


def _scalar_row(pid, row, query, board, fact, now, settings):
    """The per-candidate form context_matrix replaced, kept here as its reference."""
    activity, after = board.activity(pid, now), board.query_activity(query, now).get(pid, QUIET)
    short, long = engagement(activity, 0), engagement(activity, 1)

    def since(at, days):
        return 0.0 if at is None else math.exp(-max(now - at, 0.0) / (days * DAY))

    features = [
        10.0 / (10.0 + row + 1),
        (long + CTR_PRIOR * CTR_PRIOR_IMPRESSIONS) / (activity.impression[1] + CTR_PRIOR_IMPRESSIONS) - CTR_PRIOR,
        math.log1p(short) / POPULARITY_SCALE,
        max(-3.0, min(3.0, trend(short, long, board.half_lives))) / 3.0,
        math.log1p(engagement(after, 0) + engagement(after, 1)) / QUERY_SCALE,
        since(fact.created_at, settings.freshness_days),
        fact.price_drop * since(fact.price_dropped_at, settings.change_days),
        since(fact.restocked_at, settings.change_days),
    ]
    return features, exploration(fact, activity, now, settings)


@pytest.mark.parametrize("seed", range(5))
def test_the_vector_form_equals_the_per_candidate_arithmetic(seed):
    rng = np.random.default_rng(seed)
    board, facts, now = SignalBoard(), {}, T0 + 30 * DAY
    for pid in range(40):
        for _ in range(int(rng.integers(0, 30))):
            signal = str(rng.choice(["impression", "impression", "click", "add_to_cart", "purchase"]))
            at = now - float(rng.exponential(2 * DAY)) + (3600.0 if rng.random() < 0.05 else 0.0)  # a few late stamps
            board.add(pid, signal, at, query="towel" if rng.random() < 0.3 else "")
        maybe = lambda: None if rng.random() < 0.4 else now - float(rng.exponential(10 * DAY)) + 60.0  # noqa: E731
        facts[pid] = ProductFacts(
            created_at=maybe(), price_dropped_at=maybe(), price_drop=float(rng.random() * 0.5), restocked_at=maybe()
        )
    ids = [int(p) for p in rng.permutation(45)]  # 40..44: nothing known at all
    rows, explore = context_matrix(ids, "towel", board, facts, now, SETTINGS)
    for row, pid in enumerate(ids):
        expected, explored = _scalar_row(pid, row, "towel", board, facts.get(pid, ProductFacts()), now, SETTINGS)
        assert rows[row, :8].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6), pid
        assert explore[row] == pytest.approx(explored, rel=1e-5, abs=1e-6)
    assert (rows[:, 8:] == 0).all()  # no profile: no personal features


def test_the_result_views_follow_the_matrix_rows():
    board = SignalBoard()
    board.add(3, "click", T0)
    result = apply_context(HITS, cards(8), board, None, SETTINGS, SearchContext(now=T0, query_key="towel"), None)
    assert result.head == [pid for pid, _ in HITS] and result.matrix.shape == (8, len(CONTEXT_FEATURES))
    for pid, row_index in result.row_of.items():
        assert result.features[pid].tolist() == result.matrix[row_index].tolist()
        assert result.explore[pid] == float(result.explore_values[row_index])


def test_stage_two_ips_pair_weights_are_clipped_like_fine_tuning():
    features = np.eye(3, len(CONTEXT_FEATURES), dtype=np.float32)
    page = LoggedPage(key=1, features=features, gains=np.array([0, 0, 1]), positions=np.array([1, 2, 30]))
    _, weights = page_pairs(page, lambda position: 1.0 / position**2)  # 1/900 at position 30
    assert weights.tolist() == [MAX_IPS_WEIGHT, MAX_IPS_WEIGHT] and MAX_IPS_WEIGHT == 10.0
    _, near = page_pairs(LoggedPage(1, features, np.array([0, 1, 0]), np.array([1, 2, 3])), lambda p: 1.0 / p**2)
    assert near.tolist() == [4.0, 4.0]  # below the clip: the plain inverse propensity
