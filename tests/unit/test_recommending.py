"""Recommendation lists (engine.recommending) on a tiny catalog with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.ranking.board import SignalBoard
from engine.ranking.decay import HalfLives
from engine.ranking.profile import ShopperProfile
from engine.recommending.co_occurrence import CoCounts, PairBoard, session_increments, window_increments
from engine.recommending.lists import Catalog, bought_together, recommended_for_you, trending_now
from engine.recommending.similar import similar
from engine.recommending.trending import trending_by_category
from engine.serving.cards import ProductCard
from engine.serving.vectors import VectorIndex

T0 = 1_700_000_000.0


def card(pid: int, title: str, brand: str, category: str, price: float | None = 10.0) -> ProductCard:
    return ProductCard(id=pid, external_id=f"P{pid}", title=title, brand=brand, price=price, category=category)


# Kitchen products 1-6 point along x (closer to 1 as the id grows small), garden 7-8 along y.
CARDS = {
    1: card(1, "Chef knife 8 inch", "Acme", "Kitchen > Knives"),
    2: card(2, "Chef Knife, 8-inch", "Zenith", "Kitchen > Knives"),  # same title as 1: a near-duplicate
    3: card(3, "Paring knife", "Acme", "Kitchen > Knives"),
    4: card(4, "Bread knife", "Acme", "Kitchen > Knives"),
    5: card(5, "Utility knife", "Acme", "Kitchen > Knives"),
    6: card(6, "Cleaver", "Orion", "Kitchen > Knives", price=None),  # not buyable
    7: card(7, "Garden hose", "Verde", "Garden > Watering"),
    8: card(8, "Watering can", "Verde", "Garden > Watering"),
}
ANGLES = {1: 0.0, 2: 0.05, 3: 0.09, 4: 0.2, 5: 0.3, 6: 0.02, 7: 1.4, 8: 1.5}


def vectors() -> VectorIndex:
    index = VectorIndex(2)
    ids = sorted(ANGLES)
    index.build(ids, np.array([[np.cos(ANGLES[i]), np.sin(ANGLES[i])] for i in ids], dtype=np.float32))
    return index


def catalog(board: SignalBoard | None = None, with_vectors: bool = True, per_brand: int = 2) -> Catalog:
    return Catalog(CARDS, board or SignalBoard(), vectors() if with_vectors else None, T0, per_brand)


def test_similar_skips_itself_duplicates_unbuyable_and_caps_brands():
    got = similar(1, CARDS, vectors(), SignalBoard(), T0, limit=4, per_brand=2)
    # 6 (no price) and 2 (same title) are left out; Acme gets two places (3, 4), then 5 (Acme) is capped.
    assert [r.product_id for r in got] == [3, 4, 7, 8]
    assert {r.source for r in got} == {"similar"}


def test_similar_cap_of_one_brand():
    got = similar(3, CARDS, vectors(), SignalBoard(), T0, limit=3, per_brand=1)
    assert [r.product_id for r in got] == [2, 4, 7]  # Zenith (1 is its duplicate), one Acme (5 capped), Verde


def test_similar_without_vectors_is_same_category_bestsellers():
    board = SignalBoard()
    board.add(5, "purchase", T0 - 60)
    board.add(4, "click", T0 - 60)
    got = similar(1, CARDS, None, board, T0, limit=3, per_brand=5)
    assert [r.product_id for r in got] == [5, 4, 3]  # knives only; 2 is 1's duplicate, 6 not buyable
    assert {r.source for r in got} == {"bestsellers"}


def test_window_increments_pair_once_per_session():
    assert window_increments([], 1, T0) == [(1, 1, T0)]
    assert window_increments([(1, T0 - 10)], 2, T0) == [(2, 2, T0), (2, 1, T0), (1, 2, T0)]
    assert window_increments([(1, T0 - 10)], 1, T0) == []  # already in the window
    assert window_increments([(1, T0 - 3 * 3600)], 2, T0, window=7200) == [(2, 2, T0)]  # outside the window
    assert session_increments([(2, T0), (1, T0 - 10)]) == [(1, 1, T0 - 10), (2, 2, T0), (2, 1, T0), (1, 2, T0)]


def test_co_occurrence_decays_as_the_closed_form():
    lives = HalfLives(short=100.0, long=1000.0)
    board = PairBoard(half_lives=lives)
    board.add_basket_event("a", 1, T0)
    board.add_basket_event("a", 2, T0 + 10)
    board.add_basket_event("b", 1, T0 + 500)
    board.add_basket_event("b", 2, T0 + 700)
    now = T0 + 2000
    counts = board.at(now)
    assert counts.pairs[1][2] == pytest.approx(2 ** (-(now - T0 - 10) / 1000) + 2 ** (-(now - T0 - 700) / 1000))
    assert counts.baskets[1] == pytest.approx(2 ** (-(now - T0) / 1000) + 2 ** (-(now - T0 - 500) / 1000))
    assert counts.pairs[2][1] == pytest.approx(counts.pairs[1][2])


def test_lift_does_not_just_repeat_the_bestseller():
    # 9 is in every basket; 3 is bought with 1 only. Raw pair counts would rank 9 first.
    counts = CoCounts(pairs={1: {9: 4.0, 3: 2.0}}, baskets={1: 4.0, 9: 20.0, 3: 2.0}, total=40.0)
    scores = dict(counts.scores([1]))
    assert scores[3] == pytest.approx(2.0 / (4 * 2 / 40 + 1)) and scores[9] == pytest.approx(4.0 / (4 * 20 / 40 + 1))
    assert [pid for pid, _ in counts.scores([1])] == [3, 9]


def test_bought_together_uses_history_then_falls_back_to_similar():
    counts = CoCounts(pairs={1: {7: 3.0}}, baskets={1: 3.0, 7: 3.0}, total=6.0)
    got = bought_together(catalog(), [1], counts, limit=3)
    assert [(r.product_id, r.source) for r in got] == [(7, "bought_together"), (3, "similar"), (4, "similar")]
    cold = bought_together(catalog(), [8], CoCounts({}, {}, 0.0), limit=2)
    assert [r.source for r in cold] == ["similar", "similar"] and cold[0].product_id == 7


def test_bought_together_without_a_model_version_still_answers():
    got = bought_together(catalog(with_vectors=False), [7], CoCounts({}, {}, 0.0), limit=2)
    assert [r.product_id for r in got] == [8] and got[0].source == "bestsellers"


def test_trending_per_top_level_category():
    board = SignalBoard(HalfLives(short=600.0, long=86400.0))
    for k in range(20):  # 7 sells steadily over days: not trending
        board.add(7, "purchase", T0 - 86400 * 3 + k * 3600 * 3)
    board.add(8, "add_to_cart", T0 - 60)  # 8 picks up now
    board.add(3, "click", T0 - 30)
    by_category = trending_by_category(CARDS, board, T0, limit=3)
    assert [r.product_id for r in by_category["garden"]] == [8]
    assert [r.product_id for r in by_category["kitchen"]] == [3]


def test_new_visitor_gets_trending_then_bestsellers():
    board = SignalBoard()
    board.add(8, "purchase", T0 - 10)
    got = recommended_for_you(catalog(board), None, set(), limit=3)
    assert got[0].product_id == 8 and got[0].source == "trending"
    assert {r.source for r in got[1:]} == {"bestsellers"} and len(got) == 3


def test_for_you_blends_profile_neighbours_with_trending():
    board = SignalBoard()
    board.add(7, "purchase", T0 - 10)  # garden trending
    profile = ShopperProfile(vector=np.array([1.0, 0.0], dtype=np.float32), categories={"kitchen": 1.0})
    got = recommended_for_you(catalog(board), profile, engaged={1}, limit=3)
    assert [(r.product_id, r.source) for r in got] == [(2, "for_you"), (3, "for_you"), (7, "trending")]


def test_for_you_without_vectors_reads_profile_categories():
    profile = ShopperProfile(vector=None, categories={"garden": 1.0})
    got = recommended_for_you(catalog(with_vectors=False), profile, engaged=set(), limit=2)
    assert [(r.product_id, r.source) for r in got] == [(7, "for_you"), (8, "for_you")]


def test_trending_now_never_empty_for_a_catalog():
    got = trending_now(catalog(with_vectors=False, per_brand=5), limit=4, category="kitchen")
    assert [r.product_id for r in got] == [1, 3, 4, 5]  # knives only; 2 duplicates 1, 6 has no price
