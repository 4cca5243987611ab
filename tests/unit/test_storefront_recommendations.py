"""Recommendation lists on the storefront's product, cart and home pages, and clicks from them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Event, RecommendationList


@pytest.fixture
def catalog(make_product):
    make_product(external_id="K1", title="Chef knife", brand="Acme", category_path="Kitchen", rating_count=90)
    make_product(external_id="K2", title="Cutting board", brand="Bolt", category_path="Kitchen", rating_count=50)
    make_product(external_id="K3", title="Sharpener", brand="Core", category_path="Kitchen", rating_count=5)
    make_product(external_id="G1", title="Garden hose", brand="Verde", category_path="Garden", rating_count=70)


def rec_links(page: str) -> dict[str, tuple[int, int]]:
    return {
        pid: (int(rid), int(pos))
        for pid, rid, pos in re.findall(r'href="/product/(\w+)\?rid=(\d+)&amp;pos=(\d+)"', page)
    }


def test_product_page_shows_both_lists_and_records_a_click_from_one(client, catalog):
    page = client.get("/product/K1").get_data(as_text=True)
    assert "Similar products" in page and 'data-list="similar"' in page
    links = rec_links(page)
    assert set(links) == {"K2", "K3"}  # same category, itself left out
    rid, pos = links["K2"]
    assert db.session.get(RecommendationList, rid).name == "similar"
    landed = client.get(f"/product/K2?rid={rid}&pos={pos}").get_data(as_text=True)
    assert f'name="recommendation_id" value="{rid}"' in landed  # add to cart from here keeps the attribution
    click = db.session.scalar(select(Event).where(Event.recommendation_id == rid))
    assert (click.type, click.position) == ("click", pos)
    client.post("/cart/add", data={"product_id": "K2", "recommendation_id": str(rid), "position": str(pos)})
    cart = db.session.scalar(select(Event).where(Event.type == "add_to_cart"))
    assert cart.recommendation_id == rid


def test_bought_together_shows_on_the_product_and_cart_pages(app, client, catalog):
    other = app.test_client()
    for external_id in ("K1", "G1"):  # the other shopper saw both products' pages
        other.get(f"/product/{external_id}")
    other.post("/api/events", json={"events": [{"type": "purchase", "product_id": p} for p in ("K1", "G1")]})
    page = client.get("/product/K1").get_data(as_text=True)
    assert "Frequently bought together" in page
    together = page[page.index('data-list="bought_together"') :]
    assert "Garden hose" in together
    client.post("/cart/add", data={"product_id": "G1"})
    cart = client.get("/cart").get_data(as_text=True)
    assert "Frequently bought together" in cart and "Chef knife" in cart[cart.index('data-list="bought_together"') :]


def test_home_shows_recommended_for_you_and_trending(client, catalog):
    page = client.get("/").get_data(as_text=True)
    assert "Recommended for you" in page and "Trending now" in page
    assert "Customer favourites" not in page
