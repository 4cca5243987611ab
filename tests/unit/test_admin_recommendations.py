"""The admin's Recommendations page: per-list figures from logged lists and their events, and the explain view."""

from __future__ import annotations

import pytest

from webapp.services.recommendation_stats import strategy_stats


@pytest.fixture
def shop(make_product):
    make_product(external_id="K1", title="Chef knife", brand="Acme", category_path="Kitchen", rating_count=90)
    make_product(external_id="K2", title="Cutting board", brand="Bolt", category_path="Kitchen", rating_count=50)
    make_product(external_id="K3", title="Sharpener", brand="Core", category_path="Kitchen", rating_count=5)


def test_impressions_clicks_and_carts_per_list(app, client, shop):
    served = client.get("/api/recommendations?context=product&product_id=K1").get_json()["lists"]
    similar = next(found for found in served if found["list"] == "similar")
    rid, first = similar["recommendation_id"], similar["results"][0]["product_id"]
    events = [
        {"type": kind, "product_id": first, "recommendation_id": rid, "position": 1}
        for kind in ("click", "add_to_cart")
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 201
    client.get("/api/recommendations?context=product&product_id=K1")  # a second list shown, not engaged
    total = next(row for row in strategy_stats(7) if row.day == "all" and row.name == "similar")
    assert (total.lists, total.impressions, total.clicks, total.carts, total.purchases) == (2, 4, 1, 1, 0)
    assert total.ctr == pytest.approx(0.25) and total.cart_rate == pytest.approx(0.25)


def test_the_page_shows_the_figures_and_explains_a_product(client, login, shop):
    client.get("/api/recommendations?context=product&product_id=K1")
    login("analyst")
    page = client.get("/admin/recommendations?product=K1").get_data(as_text=True)
    assert 'data-list="similar" data-day="all"' in page and "Recommendations" in page
    assert "Cutting board" in page and "same category, by engagement" in page
    bad = client.get("/admin/recommendations?days=0")
    assert bad.status_code == 400
    assert client.get("/admin/recommendations?product=NOPE").status_code == 400
