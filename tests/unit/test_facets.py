"""Brand facets count the results the page ranks (engine.serving.facets), before and after a
brand is ticked, with a model version attached (dense-only matches in the grid)."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.serving.bundle import load_bundle
from engine.serving.facets import brand_counts, ranked_brand_facets
from engine.serving.lexical import Filters
from engine.serving.searcher import Searcher, SearchRequest
from tests.unit.test_searcher_hybrid import BY_ID, CARDS, built  # noqa: F401


@pytest.fixture
def searcher(built):  # noqa: F811
    searcher = Searcher(candidates=50)
    searcher.apply_changes(CARDS, [])
    searcher.attach(load_bundle(built, 3))
    return searcher


def every_hit(searcher, request: SearchRequest) -> list[int]:
    """The ids of every result across all pages, as a shopper paging through would see them."""
    response = searcher.search(request)
    pages = -(-response.candidates // request.page_size)  # the matching results, then the related ones
    ids = []
    for page in range(1, pages + 1):
        ids += [h.card.id for h in searcher.search(SearchRequest(**{**request.__dict__, "page": page})).hits]
    return ids


@pytest.mark.parametrize("mode", ["rrf", "hybrid"])
def test_facets_count_the_fused_results_before_and_after_a_brand_is_ticked(searcher, mode):
    searcher.bundle.retrieval_mode = mode
    request = SearchRequest(text="water bottle", page_size=2)
    response = searcher.search(request)
    lexical_only = searcher.lexical.search("water bottle").brand_counts
    shown = Counter(BY_ID[pid].brand for pid in every_hit(searcher, request))
    assert response.brand_counts == dict(shown)
    assert sum(shown.values()) > sum(lexical_only.values())  # dense-only matches are in the grid and the facet
    for brand, count in response.brand_counts.items():
        ticked = SearchRequest(text="water bottle", page_size=2, filters=Filters(brands=(brand,)))
        after = searcher.search(ticked)
        hits = every_hit(searcher, ticked)
        assert after.brand_counts[brand] == len(hits) == count, brand
        assert {BY_ID[pid].brand for pid in hits} == {brand}
        assert set(after.brand_counts) == set(response.brand_counts)  # other brands stay to switch to


def test_counts_are_ordered_and_cut():
    cards = {c.id: c for c in CARDS}
    assert brand_counts([1, 2, 3, 5, 6], cards) == {"Acme": 3, "Hydro": 2}
    assert brand_counts([1, 2, 3, 5, 6], cards, size=1) == {"Acme": 3}
    ranked = [(5, 1.0)]
    assert ranked_brand_facets(ranked, ("Hydro", "Nobody"), cards, lambda: [(2, 1.0), (3, 0.5)]) == {
        "Acme": 2,
        "Hydro": 1,
        "Nobody": 0,  # a ticked brand with nothing left stays visible to untick
    }
