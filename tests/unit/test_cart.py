"""The cart and the demo checkout (webapp.storefront.cart, webapp.services.orders): prices,
quantities, line totals and a total; a confirmation step; an order number; products with a
price on request cannot be ordered; purchases are recorded with the order."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Event, Order, Product


@pytest.fixture
def catalog(make_product):
    make_product(external_id="T1", title="Cotton bath towel", price=12.5)
    make_product(external_id="M1", title="Coffee mug", price=8.0)
    make_product(external_id="Q1", title="Custom sofa", price=None)


def events(kind: str) -> list[Event]:
    return list(db.session.scalars(select(Event).where(Event.type == kind).order_by(Event.id)))


def cart_rows(page: str) -> dict[str, tuple[str, str, str]]:
    """External id -> (price, quantity, line total) as the cart page shows them."""
    rows = {}
    for pid, body in re.findall(r'<tr data-product="([^"]+)">(.*?)</tr>', page, re.S):
        price = re.search(r'class="num price">([^<]+)<', body).group(1).strip()
        quantity = re.search(r'name="quantity"[^>]*value="(\d+)"', body).group(1)
        total = re.search(r'class="num line-total">(.*?)</td>', body, re.S).group(1).strip()
        rows[pid] = (price, quantity, total)
    return rows


def add(client, external_id: str) -> None:
    """A shopper adds from the product page they were shown (an unattributed add needs a view)."""
    client.get(f"/product/{external_id}")
    client.post("/cart/add", data={"product_id": external_id})


def total_of(page: str) -> str:
    return re.search(r'class="num cart-total">([^<]+)<', page).group(1)


def test_the_cart_shows_prices_quantities_line_totals_and_a_total(client, catalog):
    add(client, "T1")
    add(client, "T1")  # again: one more
    add(client, "M1")
    page = client.get("/cart").get_data(as_text=True)
    assert cart_rows(page) == {"T1": ("$12.50", "2", "$25.00"), "M1": ("$8.00", "1", "$8.00")}
    assert total_of(page) == "$33.00"
    assert len(events("add_to_cart")) == 3  # each add is feedback, as before


def test_quantities_change_and_lines_are_removed_without_feedback_events(client, catalog):
    add(client, "T1")
    add(client, "M1")
    assert client.post("/cart/update", data={"product_id": "T1", "quantity": "4"}).status_code == 302
    page = client.get("/cart").get_data(as_text=True)
    assert cart_rows(page)["T1"] == ("$12.50", "4", "$50.00") and total_of(page) == "$58.00"
    client.post("/cart/remove", data={"product_id": "M1"})
    client.post("/cart/update", data={"product_id": "T1", "quantity": "0"})
    assert "Your cart is empty" in client.get("/cart").get_data(as_text=True)
    assert len(events("add_to_cart")) == 2 and events("purchase") == []


@pytest.mark.parametrize("quantity", ["-1", "11", "two", "", "²", "1e3"])
def test_a_bad_quantity_is_a_400_that_keeps_the_cart(client, catalog, quantity):
    add(client, "T1")
    response = client.post("/cart/update", data={"product_id": "T1", "quantity": quantity})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Quantity must be a whole number from 0 to 10." in page
    assert cart_rows(client.get("/cart").get_data(as_text=True))["T1"][1] == "1"


def test_buy_all_asks_for_confirmation_then_records_the_order(client, catalog):
    add(client, "T1")
    client.post("/cart/update", data={"product_id": "T1", "quantity": "3"})
    add(client, "M1")
    cart = client.get("/cart").get_data(as_text=True)
    assert 'href="/checkout"' in cart and "Buy all" in cart
    confirm = client.get("/checkout").get_data(as_text=True)
    assert "Demo checkout" in confirm and "no payment is taken" in confirm
    assert "Place order ($45.50)" in confirm
    assert events("purchase") == [] and db.session.scalar(select(Order.id)) is None  # nothing bought yet
    thanks = client.post("/buy").get_data(as_text=True)
    order = db.session.scalars(select(Order)).one()
    assert f"Order number <strong>K-{order.id:06d}</strong>" in thanks
    assert order.total == 45.5 and [(line["product_id"], line["quantity"]) for line in order.lines] == [
        ("T1", 3),
        ("M1", 1),
    ]
    assert [(e.quantity, e.value) for e in events("purchase")] == [(3, 37.5), (1, 8.0)]
    assert "Your cart is empty" in client.get("/cart").get_data(as_text=True)


def test_price_on_request_cannot_be_added_or_bought(client, catalog):
    product = client.get("/product/Q1").get_data(as_text=True)
    assert "cannot be ordered online" in product and "Add to cart" not in product and "Buy now" not in product
    added = client.post("/cart/add", data={"product_id": "Q1"}, follow_redirects=True).get_data(as_text=True)
    assert "price is on request" in added and "Your cart is empty" in added
    bought = client.post("/buy", data={"product_id": "Q1"}, follow_redirects=True).get_data(as_text=True)
    assert "cannot be bought online" in bought
    assert events("add_to_cart") == [] and events("purchase") == [] and db.session.scalar(select(Order.id)) is None


def test_a_product_whose_price_is_withdrawn_stays_in_the_cart_and_out_of_the_order(client, catalog):
    add(client, "T1")
    add(client, "M1")
    db.session.scalars(select(Product).where(Product.external_id == "M1")).one().price = None
    db.session.commit()
    page = client.get("/cart").get_data(as_text=True)
    assert cart_rows(page)["M1"][0] == "Price on request" and total_of(page) == "$12.50"
    assert "Not included (price on request): Coffee mug" in client.get("/checkout").get_data(as_text=True)
    client.post("/buy")
    assert [line["product_id"] for line in db.session.scalars(select(Order)).one().lines] == ["T1"]
    assert list(cart_rows(client.get("/cart").get_data(as_text=True))) == ["M1"]


def test_a_cart_cookie_from_before_quantities_reads_as_one_each(client, catalog):
    with client.session_transaction() as session:
        session["cart"] = [{"pid": "T1"}, {"pid": "M1", "search_id": 5, "position": 1}]
    assert cart_rows(client.get("/cart").get_data(as_text=True)) == {
        "T1": ("$12.50", "1", "$12.50"),
        "M1": ("$8.00", "1", "$8.00"),
    }
