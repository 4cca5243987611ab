"""The storefront's feedback routes (a click-carrying product link, add to cart, buy) draw on
the visitor's events budget, shared with /api/events: past the limit they answer a friendly
429 page and store nothing more. Plain browsing is never limited."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Event

LIMIT = 5  # events requests per visitor per minute, in these tests
OVER = 3  # requests sent past the limit


@pytest.fixture
def shop(app, make_product):
    """Tiny events budget, roomy search and address budgets, and one product to act on."""
    app.config.update(
        EVENTS_RATE_LIMIT=f"{LIMIT} per minute", SEARCH_RATE_LIMIT="100 per minute", IP_RATE_LIMIT="100 per minute"
    )
    return make_product(external_id="TOWEL1", title="Blue cotton towel", price=9.0)


def events(kind: str) -> int:
    return db.session.scalar(select(func.count(Event.id)).where(Event.type == kind))


def assert_friendly_429(response) -> None:
    assert response.status_code == 429
    assert response.mimetype == "text/html"  # a page for a shopper, not the API's JSON
    page = response.get_data(as_text=True)
    assert "One moment, please" in page and "your cart is kept" in page
    assert "too many events requests" in page
    assert int(response.headers["Retry-After"]) > 0


def test_add_to_cart_is_refused_past_the_limit_and_stores_nothing_more(client, shop):
    client.get("/product/TOWEL1")  # shown: an add to cart without a search counts for it
    statuses = [client.post("/cart/add", data={"product_id": "TOWEL1"}).status_code for _ in range(LIMIT + OVER)]
    assert statuses == [302] * LIMIT + [429] * OVER
    assert events("add_to_cart") == LIMIT
    assert_friendly_429(client.post("/cart/add", data={"product_id": "TOWEL1"}))
    assert events("add_to_cart") == LIMIT


def test_buy_is_refused_past_the_limit_and_stores_nothing_more(client, shop):
    client.get("/product/TOWEL1")
    statuses = [client.post("/buy", data={"product_id": "TOWEL1"}).status_code for _ in range(LIMIT + OVER)]
    assert statuses == [200] * LIMIT + [429] * OVER
    assert events("purchase") == LIMIT
    assert_friendly_429(client.post("/buy", data={"product_id": "TOWEL1"}))
    assert client.get("/cart").status_code == 200  # the cart page itself is never limited


def test_clicks_from_result_links_are_limited_but_browsing_is_not(client, shop):
    found = client.get("/api/search", query_string={"q": "towel"}).get_json()
    hit = next(r for r in found["results"] if r["product_id"] == "TOWEL1")
    link = f"/product/TOWEL1?sid={found['search_id']}&pos={hit['position']}"
    statuses = [client.get(link).status_code for _ in range(LIMIT + OVER)]
    assert statuses == [200] * LIMIT + [429] * OVER
    assert events("click") == 1  # reloads of one result link record one click (and still count as requests)
    assert_friendly_429(client.get(link))
    # The same page without a click to record still shows, as often as the shopper likes.
    assert [client.get("/product/TOWEL1").status_code for _ in range(LIMIT)] == [200] * LIMIT
    assert events("click") == 1


def test_the_pages_and_the_api_share_one_events_budget(app, client, shop):
    click = {"type": "add_to_cart", "product_id": "TOWEL1"}
    client.get("/product/TOWEL1")
    assert [client.post("/api/events", json={"events": [click]}).status_code for _ in range(3)] == [201] * 3
    assert [client.post("/cart/add", data={"product_id": "TOWEL1"}).status_code for _ in range(3)] == [302, 302, 429]
    refused = client.post("/api/events", json={"events": [click]})
    assert refused.status_code == 429 and refused.is_json  # the API keeps answering JSON
    assert events("add_to_cart") == LIMIT
    # Another shopper has a budget of their own.
    other = app.test_client()
    other.get("/product/TOWEL1")
    assert other.post("/cart/add", data={"product_id": "TOWEL1"}).status_code == 302
