"""Honest result counts: `total` counts the products that match the query; the related rest follow them."""

from __future__ import annotations

from engine.serving.cards import ProductCard
from engine.serving.searcher import Searcher, SearchRequest


def card(pid: int, title: str) -> ProductCard:
    return ProductCard(id=pid, external_id=f"P{pid}", title=title, brand="B", price=10.0, rating=4.0, rating_count=1)


CATALOG = [
    card(1, "Wireless mouse"),
    card(2, "Wireless mouse, silent click"),
    card(3, "Wireless light switch"),
    card(4, "Wireless TV box"),
    card(5, "Gaming mouse pad"),
    card(6, "Garden hose"),
]


def searcher() -> Searcher:
    s = Searcher()
    s.apply_changes(CATALOG, [])
    return s


def test_total_counts_matching_results_and_related_ones_follow():
    response = searcher().search(SearchRequest(text="wireless mouse"))
    assert response.total == 2 and response.related == 3
    ids = [h.card.id for h in response.hits]
    assert set(ids[:2]) == {1, 2} and set(ids[2:]) == {3, 4, 5}
    assert [h.matches for h in response.hits] == [True, True, False, False, False]


def test_a_near_spelling_of_every_word_is_a_match():
    response = searcher().search(SearchRequest(text="wirelss mouse"))
    assert {h.card.id for h in response.hits if h.matches} == {1, 2}
    assert response.total == 2


def test_no_match_shows_related_products_only():
    response = searcher().search(SearchRequest(text="wireless keyboard"))
    assert response.total == 0 and response.related == 4  # every "wireless" product
    assert not any(h.matches for h in response.hits)


def test_browsing_without_words_counts_everything():
    response = searcher().search(SearchRequest(text=""))
    assert response.total == len(CATALOG) and response.related == 0


def test_the_api_and_the_page_say_what_matches(app, client, make_product):
    for c in CATALOG:
        make_product(external_id=c.external_id, title=c.title)
    body = client.get("/api/search", query_string={"q": "wireless mouse"}).get_json()
    assert (body["total"], body["related"]) == (2, 3)
    assert [r["matches"] for r in body["results"]] == [True, True, False, False, False]
    page = client.get("/search", query_string={"q": "wireless mouse"}).get_data(as_text=True)
    assert "2 results for “wireless mouse”</p>" in page and "Then 3 related products." in page
    assert "Related products</h2>" in page
    none = client.get("/search", query_string={"q": "wireless keyboard", "spell": "0"}).get_data(as_text=True)
    assert "No exact matches for “wireless keyboard”, showing related products" in none
