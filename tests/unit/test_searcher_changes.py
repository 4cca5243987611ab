"""Catalog changes in a Searcher with a model version: what is embedded again and what is forgotten."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.serving.bundle import load_bundle
from engine.serving.lexical import Filters
from engine.serving.searcher import Searcher, SearchRequest
from tests.unit.serving_fixtures import build_version_dir, card

CARDS = [
    card(1, "stainless steel water bottle", brand="Hydro", price=25.0, rating=4.8, rating_count=900),
    card(2, "insulated water bottle for kids", brand="Acme", price=12.0, rating=4.1, rating_count=50),
    card(3, "wool winter socks", brand="Acme", price=8.0, rating=3.5, rating_count=20),
    card(4, "ceramic coffee mug", brand="Acme", price=9.5, rating=4.9, rating_count=1200),
    card(5, "garden hose with spray nozzle", brand="Hydro", price=40.0, rating=4.4, rating_count=300),
]


class _CountingEncoder:
    """The bundle's real product encoder, counting the texts it is asked to embed."""

    def __init__(self, encoder) -> None:
        self.encoder, self.texts = encoder, []

    def encode(self, texts):
        self.texts.extend(texts)
        return self.encoder.encode(texts)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    return build_version_dir(tmp_path_factory.mktemp("changes") / "v3", CARDS)


@pytest.fixture
def searcher(built):
    searcher = Searcher(candidates=50)
    searcher.apply_changes(CARDS, [])
    searcher.attach(load_bundle(built, 3))
    return searcher


@pytest.fixture
def encoder(searcher):
    counting = _CountingEncoder(searcher.bundle.product_encoder())
    searcher.bundle._product_encoder = counting  # noqa: SLF001 - the loaded bundle's own encoder, counted
    return counting


def ids(response) -> list[int]:
    return [h.card.id for h in response.hits]


def test_price_stock_and_rating_changes_call_no_encoder(searcher, encoder):
    repriced = [
        replace(c, price=(c.price or 0) * 0.9, rating=4.0, rating_count=c.rating_count + 1, restocked_at=1.7e9)
        for c in CARDS
    ]
    assert searcher.apply_changes(repriced, []) == len(CARDS)
    assert encoder.texts == []
    assert searcher.cards[1].price == pytest.approx(22.5) and searcher.cards[1].restocked_at == 1.7e9
    under_23 = searcher.search(SearchRequest(text="water bottle", filters=Filters(price_max=23.0)))
    assert 1 in ids(under_23)  # the lexical index took the new price too


def test_a_retitled_product_is_embedded_once_and_found_by_its_new_words(searcher, encoder):
    words = SearchRequest(text="trekking poles")
    assert ids(searcher.search(words, mode="lexical")) == []
    retitled = replace(CARDS[2], title="carbon trekking poles")
    assert searcher.apply_changes([retitled, replace(CARDS[0], price=20.0)], []) == 2
    assert len(encoder.texts) == 1 and "trekking" in encoder.texts[0]
    assert ids(searcher.search(words, mode="lexical")) == [3]
    assert ids(searcher.search(words))[0] == 3
    hits, _, _ = searcher.retrieve("carbon trekking poles", mode="dense")
    assert hits[0][0] == 3


def test_a_price_change_forgets_only_the_results_it_can_reach(searcher, encoder):
    """Lexical mode: a query considers only its matches (dense retrieval sees all of a tiny catalog)."""
    bottles, mugs = SearchRequest(text="water bottle"), SearchRequest(text="ceramic mug")
    cheap = SearchRequest(text="garden hose", filters=Filters(price_max=30.0))
    for request in (bottles, mugs, cheap):
        searcher.search(request, mode="lexical")
    assert len(searcher.result_cache) == 3
    searcher.apply_changes([replace(CARDS[2], price=1.0)], [])  # socks: no query above matched them
    assert len(searcher.result_cache) == 2  # only the price filter's entry went
    assert searcher.search(bottles, mode="lexical") and searcher.result_cache.hits == 1
    searcher.apply_changes([replace(CARDS[3], rating=2.0)], [])  # the mug: its query's entry goes
    assert len(searcher.result_cache) == 1
    searcher.search(bottles, mode="lexical")
    assert searcher.result_cache.hits == 2
    searcher.apply_changes([replace(CARDS[0], title="steel flask")], [])  # new words: any query may move
    assert len(searcher.result_cache) == 0
    assert len(encoder.texts) == 1
