"""GET /api/suggest (webapp/api/suggest_routes.py, webapp/services/instant_suggest.py): popular
queries from the search log and the worker's product titles, refreshed on a clock, bad input
refused as JSON, and a rate limit of its own."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.extensions import db
from webapp.models import SearchQuery, Visitor
from webapp.services import instant_suggest


@pytest.fixture
def clock(monkeypatch):
    """The suggestion index's clock, moved by hand: now[0] is monotonic() in seconds."""
    now = [1000.0]
    monkeypatch.setattr(instant_suggest.time, "monotonic", lambda: now[0])
    return now


@pytest.fixture
def catalog(make_product):
    make_product(external_id="T1", title="Cotton Bath Towel", rating_count=50)
    make_product(external_id="T2", title="Beach Towel Oversized", rating_count=500)
    make_product(external_id="M1", title="Coffee Mug", rating_count=5)


def search_as_new_visitors(app, text: str, visitors: int = 2) -> None:
    """New visitors from distinct networks; the hours rule is tested in tests/unit/test_suggestions.py."""
    app.config["SUGGEST_MIN_HOURS"] = 1
    for n in range(visitors):
        response = app.test_client().get(
            "/api/search", query_string={"q": text}, environ_base={"REMOTE_ADDR": f"198.51.{n}.1"}
        )
        assert response.status_code == 200


def suggest(client, q: str, **params) -> dict:
    response = client.get("/api/suggest", query_string={"q": q, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_suggests_popular_queries_above_titles(app, client, catalog, clock):
    search_as_new_visitors(app, "beach towel")
    body = suggest(client, "Beach T")
    assert body == {
        "query": "Beach T",
        "suggestions": [
            {"text": "beach towel", "kind": "query", "product_id": None},
            {"text": "Beach Towel Oversized", "kind": "product", "product_id": "T2"},
        ],
    }
    # A word match: the query, then titles by rating count.
    assert [s["product_id"] for s in suggest(client, "towel")["suggestions"]] == [None, "T2", "T1"]
    assert suggest(client, "bech")["suggestions"][0]["text"] == "beach towel"  # one typo forgiven


def test_the_index_refreshes_from_the_log_and_catalog_on_its_interval(app, client, catalog, make_product, clock):
    assert suggest(client, "mug")["suggestions"] == [{"text": "Coffee Mug", "kind": "product", "product_id": "M1"}]
    search_as_new_visitors(app, "mug")
    make_product(external_id="M2", title="Mug Warmer", rating_count=1)
    clock[0] += app.config["SUGGEST_REFRESH_SECONDS"] - 1
    assert len(suggest(client, "mug")["suggestions"]) == 1  # still the index built a moment ago
    clock[0] += 1
    assert [s["text"] for s in suggest(client, "mug")["suggestions"]] == ["mug", "Mug Warmer", "Coffee Mug"]


def test_only_queries_several_visitors_found_without_spelling_help_are_suggested(app, client, catalog, clock):
    search_as_new_visitors(app, "towel", visitors=1)  # one shopper's query stays private
    visitors = [Visitor(id=f"v{n}") for n in range(3)]
    db.session.add_all(visitors)
    db.session.flush()
    for visitor in visitors:
        db.session.add(SearchQuery(text="towel zzz", normalized="towel zzz", result_count=0, visitor_id=visitor.id))
        db.session.add(SearchQuery(text="towl", normalized="towl", result_count=3, fuzzy=True, visitor_id=visitor.id))
    db.session.commit()
    assert {s["kind"] for s in suggest(client, "tow")["suggestions"]} == {"product"}
    app.config.update(SUGGEST_MIN_VISITORS=1, SUGGEST_MIN_ADDRESSES=1)
    clock[0] += app.config["SUGGEST_REFRESH_SECONDS"]
    assert [s["kind"] for s in suggest(client, "tow")["suggestions"]] == ["query", "product", "product"]
    assert suggest(client, "tow")["suggestions"][0]["text"] == "towel"


def test_limit_and_empty_input(client, catalog, clock):
    assert len(suggest(client, "t")["suggestions"]) == 2
    assert len(suggest(client, "t", limit=1)["suggestions"]) == 1
    assert suggest(client, "t", limit="")["suggestions"]  # an empty parameter means the default
    assert suggest(client, "") == {"query": "", "suggestions": []}
    assert suggest(client, "   ")["suggestions"] == []
    assert client.get("/api/suggest").get_json() == {"query": "", "suggestions": []}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "x" * 201}, "q must be at most 200 characters"),
        ({"q": "towel\x00"}, "q must not contain control characters"),
        ({"q": "to\nwel"}, "q must not contain control characters"),
        ({"q": "towel\x7f"}, "q must not contain control characters"),
        ({"q": "towel\x85"}, "q must not contain control characters"),
        ({"q": "t", "limit": "0"}, "limit must be a whole number from 1 to 20"),
        ({"q": "t", "limit": "21"}, "limit must be a whole number from 1 to 20"),
        ({"q": "t", "limit": "abc"}, "limit must be a whole number from 1 to 20"),
        ({"q": "t", "limit": "²"}, "limit must be a whole number from 1 to 20"),
        ({"q": "t", "limit": "-1"}, "limit must be a whole number from 1 to 20"),
    ],
)
def test_bad_input_is_a_json_400(client, params, message):
    response = client.get("/api/suggest", query_string=params)
    assert response.status_code == 400 and response.is_json
    assert response.get_json() == {"error": message}


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=250), limit=st.one_of(st.none(), st.text(max_size=3)))
def test_any_bytes_get_suggestions_or_a_json_400(client, catalog, raw, limit):
    query_string = (
        "q=" + quote_from_bytes(raw) + ("" if limit is None else "&limit=" + quote_from_bytes(limit.encode()))
    )
    response = client.get("/api/suggest?" + query_string)
    assert response.status_code in (200, 400), (raw, limit, response.data[:300])
    body = response.get_json()
    if response.status_code == 400:
        assert body["error"].startswith(("q must", "limit must"))
    else:
        assert len(body["suggestions"]) <= (int(limit) if limit and limit.strip() else 8)


def test_suggestions_have_their_own_limits_apart_from_search(app, client, catalog, clock):
    app.config.update(
        SUGGEST_RATE_LIMIT="3 per minute", SUGGEST_IP_RATE_LIMIT="5 per minute", IP_RATE_LIMIT="2 per minute"
    )
    assert client.get("/").status_code == 200  # the page the shopper types in gives their visitor id
    assert [client.get("/api/suggest?q=t").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/suggest?q=t")
    assert refused.status_code == 429 and refused.get_json()["error"].startswith("too many suggest requests")
    # Typing used none of the address's search budget (IP_RATE_LIMIT), which it does not share.
    assert [app.test_client().get("/api/search?q=t").status_code for _ in range(3)] == [200, 200, 429]
    # Suggestions have an address budget of their own: 3 of its 5 went to the first visitor; clients
    # without a visitor id meet only that one.
    assert [app.test_client().get("/api/suggest?q=t").status_code for _ in range(3)] == [200, 200, 429]


def test_a_suggestion_never_gives_a_visitor_id(app, client, catalog, clock):
    """Typing fires suggestions while a new shopper's first search page is on its way: a visitor
    id given in one of their responses could replace the page's and disown the shopper's search."""
    search = client.get("/search?q=towel")  # the first page, and the shopper's visitor id
    racing = app.test_client().get("/api/suggest?q=towel")  # sent before that page's cookie arrived
    assert racing.status_code == 200 and "Set-Cookie" not in racing.headers
    assert "Set-Cookie" not in client.get("/api/suggest?q=towel").headers  # nor with the id: nothing to change
    [search_row] = db.session.query(SearchQuery).all()
    with client.session_transaction() as session:
        assert session["vid"] == search_row.visitor_id
    assert search.status_code == 200


def test_a_database_error_keeps_the_previous_suggestions(app, client, catalog, clock, monkeypatch):
    assert suggest(client, "mug")["suggestions"]

    def unreachable(**_kwargs):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(instant_suggest, "popular_query_counts", unreachable)
    clock[0] += app.config["SUGGEST_REFRESH_SECONDS"]
    assert suggest(client, "mug")["suggestions"][0]["product_id"] == "M1"
