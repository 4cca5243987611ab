"""The Searcher (engine.serving.searcher): sorting, paging, browsing and in-place updates."""

from __future__ import annotations

import pytest

from engine.serving.lexical import Filters
from engine.serving.searcher import ProductCard, Searcher, SearchRequest

CARDS = [
    ProductCard(1, "E1", "Blue bath towel", brand="Acme", price=20.0, rating=4.0, rating_count=5),
    ProductCard(2, "E2", "Red bath towel", brand="Acme", price=5.0, rating=4.9, rating_count=500),
    ProductCard(3, "E3", "Green bath towel", brand="Soft", price=None, rating=3.0, rating_count=50),
    ProductCard(4, "E4", "White bath towel", brand="Soft", price=12.0, rating=None, rating_count=0),
    ProductCard(5, "E5", "Ceramic mug", brand="Mugsy", price=7.0, rating=4.5, rating_count=9000),
]


@pytest.fixture
def searcher() -> Searcher:
    s = Searcher()
    assert s.apply_changes(CARDS, []) == len(CARDS)
    return s


def external_ids(response) -> list[str]:
    return [hit.card.external_id for hit in response.hits]


def test_relevance_search_returns_matching_cards(searcher):
    response = searcher.search(SearchRequest(text="bath towel"))
    assert set(external_ids(response)) == {"E1", "E2", "E3", "E4"}
    assert response.total == 4 and response.ranker == "lexical"
    assert [h.position for h in response.hits] == [1, 2, 3, 4]
    assert response.brand_counts == {"Acme": 2, "Soft": 2}


def test_sort_by_price_ascending_puts_unknown_prices_last(searcher):
    response = searcher.search(SearchRequest(text="towel", sort="price_asc"))
    assert external_ids(response) == ["E2", "E4", "E1", "E3"]


def test_sort_by_price_descending_puts_unknown_prices_last(searcher):
    response = searcher.search(SearchRequest(text="towel", sort="price_desc"))
    assert external_ids(response) == ["E1", "E4", "E2", "E3"]


def test_sort_by_rating_then_rating_count(searcher):
    searcher.apply_changes([ProductCard(6, "E6", "Grey bath towel", price=1.0, rating=4.0, rating_count=99)], [])
    response = searcher.search(SearchRequest(text="towel", sort="rating"))
    assert external_ids(response) == ["E2", "E6", "E1", "E3", "E4"]


def test_sorting_keeps_positions_sequential(searcher):
    response = searcher.search(SearchRequest(text="towel", sort="price_desc"))
    assert [h.position for h in response.hits] == [1, 2, 3, 4]


def test_browse_without_words_orders_by_rating_count(searcher):
    response = searcher.search(SearchRequest(text=""))
    assert external_ids(response) == ["E5", "E2", "E3", "E1", "E4"]
    assert response.total == 5


def test_browse_with_filters_only(searcher):
    response = searcher.search(SearchRequest(text="  ", filters=Filters(brands=("Soft",))))
    assert external_ids(response) == ["E3", "E4"]
    assert response.brand_counts == {"Acme": 2, "Soft": 2, "Mugsy": 1}


def test_pagination_positions_are_global():
    searcher = Searcher()
    searcher.apply_changes(
        [ProductCard(i, f"T{i}", f"Towel number {i}", rating_count=100 - i) for i in range(1, 31)], []
    )
    first = searcher.search(SearchRequest(text="", page=1, page_size=24))
    second = searcher.search(SearchRequest(text="", page=2, page_size=24))
    assert [h.position for h in first.hits] == list(range(1, 25))
    assert [h.position for h in second.hits] == list(range(25, 31))
    assert external_ids(second)[0] == "T25"
    assert not set(external_ids(first)) & set(external_ids(second))
    assert first.total == second.total == 30
    past_end = searcher.search(SearchRequest(text="towel", page=3, page_size=24))
    assert past_end.hits == [] and past_end.total == 30


def test_candidates_bound_what_can_be_paged():
    searcher = Searcher(candidates=10)
    searcher.apply_changes([ProductCard(i, f"T{i}", "Towel") for i in range(1, 21)], [])
    response = searcher.search(SearchRequest(text="towel", page=1, page_size=24))
    assert len(response.hits) == 10 and response.candidates == 10 and response.total == 20


def test_apply_changes_skips_unchanged_and_applies_updates(searcher):
    assert searcher.apply_changes(CARDS, []) == 0
    renamed = ProductCard(5, "E5", "Ceramic teapot", brand="Mugsy", price=7.0, rating=4.5, rating_count=9000)
    assert searcher.apply_changes([renamed], []) == 1
    assert searcher.search(SearchRequest(text="mug")).hits == []
    assert external_ids(searcher.search(SearchRequest(text="teapot"))) == ["E5"]


def test_apply_changes_removes_and_ignores_unknown_removals(searcher):
    assert searcher.apply_changes([], [1, 999]) == 1
    assert 1 not in searcher.cards
    assert "E1" not in external_ids(searcher.search(SearchRequest(text="towel")))
    assert searcher.apply_changes([], [999]) == 0
