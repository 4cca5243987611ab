"""Storefront pages (webapp.storefront): search, product pages with click logging, cart, checkout."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Event, Impression, Product, SearchQuery


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def events() -> list[Event]:
    return db.session.scalars(select(Event).order_by(Event.id)).all()


def product_links(page: str) -> dict[str, tuple[int, int]]:
    """External id -> (sid, pos) from the result links on a results page."""
    links = re.findall(r'href="/product/([^"?]+)\?([^"]+)"', page)
    out = {}
    for external_id, query in links:
        params = dict(p.split("=") for p in html.unescape(query).split("&"))
        out[external_id] = (int(params["sid"]), int(params["pos"]))
    return out


@pytest.fixture
def catalog(make_product):
    make_product(external_id="T1", title="Cotton bath towel", brand="Acme", price=12.0, rating=4.5, rating_count=50)
    make_product(external_id="T2", title="Beach towel", brand="Sunny", price=25.0, rating=4.0, rating_count=5)
    make_product(external_id="M1", title="Coffee mug", brand="Mugsy", price=8.0, rating_count=500)
    make_product(external_id="GONE", title="Retired towel", is_active=False)


def test_home_shows_favourites(client, catalog):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Coffee mug" in page and "Cotton bath towel" in page and "Retired towel" not in page
    assert page.index("Coffee mug") < page.index("Cotton bath towel")  # most rated first


def test_the_first_page_gives_the_visitor_id_their_searches_and_clicks_go_by(client, catalog):
    assert "Set-Cookie" in client.get("/").headers  # before the page's script asks for suggestions
    with client.session_transaction() as session:
        visitor = session["vid"]
    links = product_links(client.get("/search?q=towel").get_data(as_text=True))
    sid, pos = links["T1"]
    assert client.get(f"/product/T1?sid={sid}&pos={pos}").status_code == 200
    assert db.session.get(SearchQuery, sid).visitor_id == visitor
    assert [(e.type, e.visitor_id) for e in events()] == [("click", visitor)]


def test_home_with_q_redirects_to_search(client):
    response = client.get("/?q=towel")
    assert response.status_code == 302 and response.headers["Location"].startswith("/search")


def test_search_page_renders_results_and_facets(client, catalog):
    response = client.get("/search?q=towel")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Cotton bath towel" in page and "Beach towel" in page
    assert "Coffee mug" not in page and "Retired towel" not in page
    assert "2 results" in page
    assert re.search(r'name="brand" value="Acme"\s*>\s*Acme <small>\(1\)</small>', page)
    assert re.search(r'name="brand" value="Sunny"\s*>\s*Sunny <small>\(1\)</small>', page)
    links = product_links(page)
    query = db.session.scalars(select(SearchQuery)).one()
    assert {sid for sid, _ in links.values()} == {query.id}
    assert sorted(pos for _, pos in links.values()) == [1, 2]
    assert count(Impression) == 2 and query.source == "storefront"


def test_search_page_brand_filter_keeps_facets(client, catalog):
    page = client.get("/search?q=towel&brand=Sunny").get_data(as_text=True)
    assert "Beach towel" in page and "Cotton bath towel" not in page
    assert re.search(r'value="Sunny" checked', page)
    assert re.search(r'value="Acme"\s*>', page)  # other brands remain to switch to


def test_zero_results_shows_brand_suggestions_when_nothing_is_popular(client, catalog):
    response = client.get("/search?q=zzzzqqq")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "No products match" in page
    chips = re.findall(r'class="chip" href="/search\?q=([^"]+)"', page)
    assert chips and set(chips) <= {"Acme", "Sunny", "Mugsy"}


def test_zero_results_shows_popular_queries(app, client, catalog):
    app.config.update(
        SUGGEST_MIN_VISITORS=1, SUGGEST_MIN_ADDRESSES=1, SUGGEST_MIN_HOURS=1
    )  # the rule: test_suggestions
    client.get("/search?q=Beach+towel")
    page = client.get("/search?q=zzzzqqq").get_data(as_text=True)
    assert "No products match" in page
    assert re.findall(r'class="chip" href="/search\?q=([^"]+)"', page) == ["beach+towel"]


def test_over_long_query_is_a_400_page(client, catalog):
    response = client.get("/search?q=" + "x" * 201)
    assert response.status_code == 400
    assert "text/html" in response.content_type
    assert "q must be at most 200 characters" in response.get_data(as_text=True)
    assert count(SearchQuery) == 0


def test_bad_page_is_a_400_page(client, catalog):
    response = client.get("/search?q=towel&page=99")
    assert response.status_code == 400 and "page must be" in response.get_data(as_text=True)


def test_product_page_from_results_logs_one_click(client, catalog):
    page = client.get("/search?q=towel").get_data(as_text=True)
    sid, pos = product_links(page)["T2"]
    response = client.get(f"/product/T2?sid={sid}&pos={pos}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Beach towel" in body
    # The add-to-cart and buy forms carry the search and position on.
    assert f'name="search_id" value="{sid}"' in body and f'name="position" value="{pos}"' in body
    (click,) = events()
    t2 = db.session.scalar(select(Product).where(Product.external_id == "T2"))
    assert (click.type, click.product_id, click.search_id, click.position) == ("click", t2.id, sid, pos)
    assert click.visitor_id == db.session.get(SearchQuery, sid).visitor_id


def test_product_page_without_search_logs_nothing(client, catalog):
    assert client.get("/product/T1").status_code == 200
    assert count(Event) == 0


@pytest.mark.parametrize(
    "tamper",
    [
        "sid={sid}9&pos={pos}",
        "sid={sid}&pos=99",
        "sid=abc&pos={pos}",
        "sid={sid}&pos=-1",
        "sid=99999999999999999999999&pos=1",
    ],
)
def test_tampered_link_logs_nothing_and_still_renders(client, catalog, tamper):
    page = client.get("/search?q=towel").get_data(as_text=True)
    sid, pos = product_links(page)["T1"]
    response = client.get("/product/T1?" + tamper.format(sid=sid, pos=pos))
    assert response.status_code == 200 and "Cotton bath towel" in response.get_data(as_text=True)
    assert count(Event) == 0


def test_another_visitors_link_logs_nothing(app, client, catalog):
    page = client.get("/search?q=towel").get_data(as_text=True)
    sid, pos = product_links(page)["T1"]
    stranger = app.test_client()
    assert stranger.get(f"/product/T1?sid={sid}&pos={pos}").status_code == 200
    assert count(Event) == 0


def test_unknown_and_inactive_products_are_404(client, catalog):
    for external_id in ("NOPE", "GONE"):
        response = client.get(f"/product/{external_id}")
        assert response.status_code == 404
        assert "not available" in response.get_data(as_text=True)


def test_add_to_cart_records_event_and_shows_cart(client, catalog):
    page = client.get("/search?q=towel").get_data(as_text=True)
    sid, pos = product_links(page)["T1"]
    response = client.post(
        "/cart/add", data={"product_id": "T1", "search_id": str(sid), "position": str(pos)}, follow_redirects=True
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Added to your cart." in body and "Cotton bath towel" in body and "Buy all" in body
    (event,) = events()
    assert (event.type, event.search_id, event.position) == ("add_to_cart", sid, pos)


@pytest.mark.parametrize("search_id", ["\u00b2", "-3", "abc", ""])
def test_add_to_cart_ignores_a_malformed_search_reference(client, catalog, search_id):
    client.get("/product/T1")
    response = client.post("/cart/add", data={"product_id": "T1", "search_id": search_id, "position": "\u00b9"})
    assert response.status_code == 302
    (event,) = events()
    assert (event.type, event.search_id, event.position) == ("add_to_cart", None, None)


def test_add_unknown_product_is_refused_politely(client, catalog):
    response = client.post("/cart/add", data={"product_id": "NOPE"}, follow_redirects=True)
    assert response.status_code == 200
    assert "could not be added" in response.get_data(as_text=True)
    assert "Your cart is empty" in response.get_data(as_text=True)
    assert count(Event) == 0


def test_buy_now_records_one_purchase(client, catalog):
    client.get("/product/M1")
    response = client.post("/buy", data={"product_id": "M1"})
    assert response.status_code == 200
    assert "Thank you for your order" in response.get_data(as_text=True)
    (event,) = events()
    assert (event.type, event.quantity, event.value, event.search_id) == ("purchase", 1, 8.0, None)


def test_buy_whole_cart_records_purchases_and_empties_cart(client, catalog):
    page = client.get("/search?q=towel").get_data(as_text=True)
    sid, pos = product_links(page)["T2"]
    client.post("/cart/add", data={"product_id": "T2", "search_id": str(sid), "position": str(pos)})
    client.get("/product/M1")
    client.post("/cart/add", data={"product_id": "M1"})
    response = client.post("/buy")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Beach towel" in body and "Coffee mug" in body
    purchases = [e for e in events() if e.type == "purchase"]
    by_id = {p.id: p.external_id for p in db.session.scalars(select(Product))}
    assert sorted((by_id[e.product_id], e.search_id, e.position) for e in purchases) == [
        ("M1", None, None),
        ("T2", sid, pos),
    ]
    assert "Your cart is empty" in client.get("/cart").get_data(as_text=True)


def test_buy_with_empty_cart_records_nothing(client, catalog):
    response = client.post("/buy", follow_redirects=True)
    assert "Your cart is empty." in response.get_data(as_text=True)
    assert count(Event) == 0


def test_admin_needs_a_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_a_page_past_the_end_says_so_and_links_back(client, catalog):
    page = client.get("/search?q=towel&page=3").get_data(as_text=True)
    assert "There is no page 3: the results for “towel” end on page 1." in page
    assert 'href="/search?q=towel&amp;page=1">Go to the last page (1)</a>' in page
    assert "No products match" not in page
    assert "There is no page" not in client.get("/search?q=zzzzqqq&page=2").get_data(as_text=True)
