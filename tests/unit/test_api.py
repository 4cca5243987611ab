"""The JSON API (webapp.api): search with logging, feedback events, health."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Event, Impression, Product, SearchQuery


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def catalog(make_product):
    make_product(external_id="T1", title="Cotton bath towel", brand="Acme", price=12.0, rating=4.5, rating_count=50)
    make_product(external_id="T2", title="Beach towel", brand="Sunny", price=25.0, rating=4.0, rating_count=5)
    make_product(external_id="T3", title="Hand towel", brand="Acme", price=None, rating=3.0, rating_count=1)
    make_product(external_id="M1", title="Coffee mug", brand="Mugsy", price=8.0)


def test_search_returns_results_and_logs_query_and_impressions(client, catalog):
    response = client.get("/api/search?q=towel&sort=price_asc")
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == "towel" and body["page"] == 1 and body["page_size"] == 24
    assert body["total"] == 3 and body["ranker"] == "lexical"
    assert [r["product_id"] for r in body["results"]] == ["T1", "T2", "T3"]
    assert [r["position"] for r in body["results"]] == [1, 2, 3]
    assert body["results"][0]["price"] == 12.0 and body["results"][2]["price"] is None
    assert body["facets"] == {"brand": {"Acme": 2, "Sunny": 1}}

    query = db.session.get(SearchQuery, body["search_id"])
    assert query is not None
    assert (query.text, query.normalized, query.sort, query.page, query.result_count, query.source) == (
        "towel",
        "towel",
        "price_asc",
        1,
        3,
        "api",
    )
    assert query.visitor_id is not None and query.latency_ms >= 0
    impressions = db.session.scalars(
        select(Impression).where(Impression.search_id == query.id).order_by(Impression.position)
    ).all()
    by_id = {p.id: p.external_id for p in db.session.scalars(select(Product))}
    assert [(i.position, by_id[i.product_id]) for i in impressions] == [(1, "T1"), (2, "T2"), (3, "T3")]


def test_search_logs_filters(client, catalog):
    body = client.get("/api/search?q=towel&brand=Acme&price_max=20").get_json()
    assert [r["product_id"] for r in body["results"]] == ["T1"]
    query = db.session.get(SearchQuery, body["search_id"])
    assert query.filters == {"brands": ["Acme"], "price_max": 20.0}


def test_second_page_positions_continue(client, make_product):
    for i in range(1, 31):
        make_product(external_id=f"T{i:02d}", title=f"Towel {i}", rating_count=100 - i)
    body = client.get("/api/search?page=2").get_json()
    assert [r["position"] for r in body["results"]] == list(range(25, 31))
    positions = db.session.scalars(select(Impression.position).where(Impression.search_id == body["search_id"]))
    assert sorted(positions) == list(range(25, 31))


def test_searches_share_one_visitor_per_client(client, catalog):
    first = client.get("/api/search?q=towel").get_json()["search_id"]
    second = client.get("/api/search?q=mug").get_json()["search_id"]
    assert db.session.get(SearchQuery, first).visitor_id == db.session.get(SearchQuery, second).visitor_id


@pytest.mark.parametrize(
    "query",
    [
        "q=" + "x" * 201,
        "page=0",
        "page=51",
        "page=abc",
        "sort=cheap",
        "price_min=9&price_max=1",
        "price_min=NaN",
        "rating_min=6",
        "&".join(f"brand=b{i}" for i in range(21)),
    ],
)
def test_bad_search_input_is_a_400_json_error(client, catalog, query):
    before = count(SearchQuery)
    response = client.get(f"/api/search?{query}")
    assert response.status_code == 400
    assert response.is_json and isinstance(response.get_json()["error"], str) and response.get_json()["error"]
    assert count(SearchQuery) == before


def _search(client, text="towel") -> dict:
    return client.get(f"/api/search?q={text}").get_json()


def test_events_happy_path(client, catalog):
    search = _search(client)
    client.get("/product/M1")  # a purchase without a search names a product the visitor was shown
    first = search["results"][0]
    response = client.post(
        "/api/events",
        json={
            "events": [
                {
                    "type": "click",
                    "product_id": first["product_id"],
                    "search_id": search["search_id"],
                    "position": first["position"],
                },
                {"type": "purchase", "product_id": "M1", "quantity": 2},
            ]
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["stored"] == 2 and len(body["ids"]) == 2
    click = db.session.get(Event, body["ids"][0])
    assert (click.type, click.search_id, click.position) == ("click", search["search_id"], first["position"])
    assert click.visitor_id == db.session.get(SearchQuery, search["search_id"]).visitor_id
    assert db.session.get(Event, body["ids"][1]).value == 16.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": "not json", "content_type": "application/json"}, "body must be a JSON object"),
        ({"data": "type=click", "content_type": "application/x-www-form-urlencoded"}, "body must be a JSON object"),
        ({"json": [{"type": "click", "product_id": "T1"}]}, "body must be a JSON object"),
        ({"json": {}}, "non-empty list"),
        ({"json": {"events": []}}, "non-empty list"),
        ({"json": {"events": [{"type": "click", "product_id": "T1"}] * 101}}, "at most 100 events"),
        ({"json": {"events": [{"type": "click", "product_id": "NOPE"}]}}, "nothing was stored"),
        ({"json": {"events": [{"type": "click", "product_id": "T1", "position": True}]}}, "nothing was stored"),
    ],
)
def test_bad_events_are_400_and_store_nothing(client, catalog, kwargs, message):
    response = client.post("/api/events", **kwargs)
    assert response.status_code == 400 and response.is_json
    assert message in response.get_json()["error"]
    assert count(Event) == 0


def test_event_error_details_name_the_bad_event(client, catalog):
    response = client.post(
        "/api/events",
        json={
            "events": [{"type": "click", "product_id": "T1"}, {"type": "click", "product_id": "T1", "colour": "red"}]
        },
    )
    assert response.status_code == 400
    assert response.get_json()["details"] == [{"index": 1, "error": "unknown fields: colour"}]
    assert count(Event) == 0


def test_events_cannot_claim_another_visitors_search(app, client, catalog):
    search = _search(client)
    other = app.test_client()
    hit = search["results"][0]
    response = other.post(
        "/api/events",
        json={
            "events": [
                {
                    "type": "click",
                    "product_id": hit["product_id"],
                    "search_id": search["search_id"],
                    "position": hit["position"],
                }
            ]
        },
    )
    assert response.status_code == 400
    assert response.get_json()["details"][0]["error"] == f"unknown search {search['search_id']}"
    assert count(Event) == 0


def test_health(client):
    response = client.get("/api/health")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_unknown_api_route_and_method_answer_json(client):
    missing = client.get("/api/nope")
    assert missing.status_code == 404 and "error" in missing.get_json()
    wrong_method = client.get("/api/events")
    assert wrong_method.status_code == 405 and "error" in wrong_method.get_json()
