"""Storefront pages in a real browser (Debian chromium) against real gunicorn: the cart and the
demo checkout, a page past the end of the results, the filters on a phone, and a product
image that cannot load."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.browser.test_storefront_browser import _shot, browser, page, shop, shop_db  # noqa: F401
from webapp.models import Event, Order

pytestmark = pytest.mark.browser


def test_cart_quantities_totals_and_a_confirmed_demo_order(page, shop, shop_db):  # noqa: F811
    page.goto(f"{shop['base']}/product/B001")
    price = float(page.locator(".details .price").inner_text().lstrip("$"))
    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_url("**/cart")
    quantity = page.get_by_label("Quantity of")
    quantity.fill("3")
    page.get_by_role("button", name="Update").click()
    page.wait_for_url("**/cart")
    row = page.locator("table.cart tbody tr").first
    assert row.locator(".line-total").inner_text() == f"${price * 3:.2f}"
    assert page.locator(".cart-total").inner_text() == f"${price * 3:.2f}"
    _shot(page, "cart-quantities")

    page.get_by_role("link", name="Buy all").click()
    page.wait_for_url("**/checkout")
    assert "Demo checkout" in page.locator(".demo-note").inner_text()
    _shot(page, "checkout")
    page.get_by_role("button", name=re.compile(r"^Place order")).click()
    page.wait_for_selector(".order-number")
    number = page.locator(".order-number strong").inner_text()
    _shot(page, "thanks")
    order = shop_db.scalars(select(Order).order_by(Order.id.desc())).first()
    assert number == f"K-{order.id:06d}" and order.total == round(price * 3, 2)
    purchase = shop_db.scalars(select(Event).where(Event.type == "purchase").order_by(Event.id.desc())).first()
    assert (purchase.quantity, purchase.value) == (3, pytest.approx(price * 3))

    page.get_by_role("link", name="Cart").click()
    page.get_by_text("Your cart is empty").wait_for()  # the bought lines left the cart


def test_a_page_past_the_end_says_so_and_links_back(page, shop):  # noqa: F811
    page.goto(f"{shop['base']}/search?q=towel&page=9")
    message = page.locator(".past-end h2")
    assert "There is no page 9" in message.inner_text()
    _shot(page, "search-past-the-end")
    page.get_by_role("link", name="Back to the first page").click()
    page.wait_for_url("**page=1**")
    assert page.locator(".results .card").count() >= 3


def test_on_a_phone_the_filters_wait_behind_a_button(browser, shop):  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(shop["base"]) else r.abort())
    phone = context.new_page()
    try:
        phone.goto(f"{shop['base']}/search?q=towel&brand=Acme")
        toggle = phone.get_by_role("button", name=re.compile(r"^Filters"))
        assert toggle.is_visible() and "1 active" in toggle.inner_text()
        assert not phone.locator("#filters").is_visible()
        first_card = phone.locator(".results .card").first.bounding_box()
        assert first_card["y"] < 844, "the first result must be on the first screen"
        _shot(phone, "phone-search")
        toggle.click()
        assert phone.locator("#filters").is_visible() and toggle.get_attribute("aria-expanded") == "true"
        _shot(phone, "phone-filters-open")
    finally:
        context.close()


def test_a_product_image_that_cannot_load_shows_the_placeholder_not_its_alt_text(page, shop):  # noqa: F811
    page.goto(f"{shop['base']}/product/B002")
    thumb = page.locator(".thumb.large")
    thumb.locator(".placeholder").wait_for(state="visible")
    page.wait_for_function("document.querySelector('.thumb.large').classList.contains('broken')")
    assert thumb.locator("img").count() == 0  # no broken image left to render its alt text
    _shot(page, "product-image-placeholder")


def test_a_misspelled_search_says_what_it_searched_and_offers_the_typed_text(page, shop):  # noqa: F811
    page.goto(f"{shop['base']}/search?q=kitchn+towels")
    note = page.locator(".spelling")
    assert note.inner_text() == "Showing results for kitchen towels; search instead for kitchn towels"
    assert "towel" in page.locator(".results .card .title").first.inner_text().lower()
    _shot(page, "search-spelling-correction")
    note.get_by_role("link", name="kitchn towels").click()
    page.wait_for_url("**spell=0**")
    assert page.locator(".spelling").count() == 0
    assert page.get_by_role("searchbox", name="Search products").input_value() == "kitchn towels"
