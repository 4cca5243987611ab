"""The stage-1 result cache: reuse for repeated searches, and never a result older than a change."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from engine.ranking.context import CONTEXT_FEATURES
from engine.ranking.stage import CONTEXT_POOL, SearchContext
from engine.serving.bundle import load_bundle
from engine.serving.lexical import Filters
from engine.serving.result_cache import StageOne, StageOneCache
from engine.serving.searcher import Searcher, SearchRequest
from tests.unit.serving_fixtures import build_version_dir, card

CARDS = [
    card(1, "stainless steel water bottle", brand="Hydro", price=25.0, rating=4.8, rating_count=900),
    card(2, "insulated water bottle for kids", brand="Acme", price=12.0, rating=4.1, rating_count=50),
    card(3, "wool winter socks", brand="Acme", price=8.0, rating=3.5, rating_count=20),
    card(4, "ceramic coffee mug", brand="Acme", price=9.5, rating=4.9, rating_count=1200),
]


def result(tag: int) -> StageOne:
    return StageOne(hits=((tag, 1.0),), total=1, fuzzy=False, brand_counts={}, ranker="lexical")


def test_lru_keeps_the_most_recently_used_entries():
    cache = StageOneCache(size=2)
    for key in ("a", "b"):
        cache.put(key, result(ord(key)), cache.generation)
    assert cache.get("a") is not None  # "a" is now the freshest
    cache.put("c", result(3), cache.generation)
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2 and cache.hits == 3 and cache.misses == 1


def test_a_result_computed_across_a_change_is_not_stored():
    cache = StageOneCache()
    before = cache.generation
    cache.invalidate()  # the catalog changed while that search ran
    cache.put("a", result(1), before)
    assert cache.get("a") is None
    cache.put("a", result(1), cache.generation)
    assert cache.get("a") == result(1)


def test_size_zero_turns_the_cache_off():
    cache = StageOneCache(size=0)
    cache.put("a", result(1), cache.generation)
    assert cache.get("a") is None and len(cache) == 0


def test_concurrent_use_stays_within_its_bound():
    cache = StageOneCache(size=50)

    def work(offset: int) -> None:
        for i in range(500):
            cache.put((offset, i % 80), result(i), cache.generation)
            cache.get((offset, (i * 7) % 80))
            if i % 97 == 0:
                cache.invalidate()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) <= 50


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    return build_version_dir(tmp_path_factory.mktemp("cached") / "v3", CARDS)


@pytest.fixture
def searcher(built):
    searcher = Searcher(candidates=20)
    searcher.apply_changes(CARDS, [])
    searcher.attach(load_bundle(built, 3))
    return searcher


def ids(response) -> list[int]:
    return [h.card.id for h in response.hits]


def test_a_repeated_search_is_answered_from_the_cache_with_the_same_page(searcher):
    request = SearchRequest(text="water bottle")
    first = searcher.search(request)
    retrievals = []
    original = searcher.retrieve
    searcher.retrieve = lambda *a, **k: retrievals.append(a) or original(*a, **k)
    second = searcher.search(request)
    assert retrievals == [] and searcher.result_cache.hits == 1
    assert ids(second) == ids(first) and second.total == first.total and second.ranker == first.ranker
    assert second.brand_counts == first.brand_counts
    second.brand_counts["Hydro"] = 99  # a caller editing its response does not edit the cache
    assert searcher.search(request).brand_counts == first.brand_counts


def test_filters_modes_and_pages_are_kept_apart(searcher):
    plain = searcher.search(SearchRequest(text="water bottle"))
    acme = searcher.search(SearchRequest(text="water bottle", filters=Filters(brands=("Acme",))))
    assert {h.card.brand for h in acme.hits} == {"Acme"} and "Hydro" in {h.card.brand for h in plain.hits}
    assert searcher.search(SearchRequest(text="water bottle"), mode="lexical").ranker == "lexical"
    assert searcher.search(SearchRequest(text="water bottle")).ranker != "lexical"
    second_page = searcher.search(SearchRequest(text="water bottle", page=2, page_size=1))
    assert ids(second_page) == ids(plain)[1:2]


def test_a_new_product_is_found_on_the_next_search(searcher):
    assert 9 not in ids(searcher.search(SearchRequest(text="water bottle")))
    searcher.apply_changes([card(9, "glass water bottle with sleeve", brand="Vitro", price=18.0)], [])
    assert 9 in ids(searcher.search(SearchRequest(text="water bottle")))
    searcher.apply_changes([], [9])
    assert 9 not in ids(searcher.search(SearchRequest(text="water bottle")))


def test_an_edited_product_is_filtered_by_its_new_fields(searcher):
    under_20 = SearchRequest(text="water bottle", filters=Filters(price_max=20.0))
    assert 1 not in ids(searcher.search(under_20))
    searcher.apply_changes([card(1, "stainless steel water bottle", brand="Hydro", price=15.0, rating=4.8)], [])
    assert 1 in ids(searcher.search(under_20))


def test_swapping_the_bundle_forgets_the_old_versions_results(searcher, built):
    request = SearchRequest(text="water bottle")
    assert searcher.search(request).model_version_id == 3
    searcher.attach(load_bundle(built, 5))  # the same artifacts served as a new version
    assert searcher.search(request).model_version_id == 5
    searcher.attach(None)
    assert searcher.search(request).ranker == "lexical"


def test_stage_two_reuses_a_cached_results_candidates_until_the_catalog_changes(searcher):
    """A repeated search keeps stage 2's candidates with its cached result; a price cut shows at once."""
    request, now = SearchRequest(text="water bottle"), 1_700_000_000.0
    context = SearchContext(now=now, query_key="water bottle")
    first = searcher.search(request, context=context)
    cached = searcher.search(request, context=context)
    assert cached.context.head == first.context.head and 1 in first.context.head
    (entry,) = [v for v in searcher.result_cache._entries.values()]  # noqa: SLF001
    kept = entry._stage_two[CONTEXT_POOL]  # noqa: SLF001 - made by the searches above, not by this look
    assert kept.ids == tuple(first.context.head)
    assert searcher.search(request, context=context).context.matrix.tolist() == cached.context.matrix.tolist()
    assert entry._stage_two[CONTEXT_POOL] is kept  # noqa: SLF001 - reused, not rebuilt

    cut = replace(CARDS[0], price=20.0, price_drop=0.2, price_dropped_at=now - 60)
    searcher.apply_changes([cut], [])
    after = searcher.search(request, context=context).context
    assert after.features[1][CONTEXT_FEATURES.index("price_drop")] == pytest.approx(0.2, rel=1e-3)
    assert first.context.features[1][CONTEXT_FEATURES.index("price_drop")] == 0.0
