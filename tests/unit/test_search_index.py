"""Keeping each worker's Searcher in step with the products table (webapp.services.search_index)."""

from __future__ import annotations

from datetime import timedelta

from engine.serving.searcher import SearchRequest
from webapp.extensions import db
from webapp.models import utcnow
from webapp.services.search_index import get_searcher, product_card, sync_searcher


def found(text: str) -> list[str]:
    return [hit.card.external_id for hit in get_searcher().search(SearchRequest(text=text)).hits]


def test_product_card_maps_the_row(make_product):
    product = make_product(
        external_id="C1",
        title="Bath towel",
        brand="Acme",
        price=None,
        rating=None,
        rating_count=None,
        category_path="Home > Bath",
        image_url="https://x/y.jpg",
        bullet_points="soft",
        description="long",
    )
    card = product_card(product)
    assert (card.id, card.external_id, card.title, card.brand, card.price, card.rating, card.rating_count) == (
        product.id,
        "C1",
        "Bath towel",
        "Acme",
        None,
        None,
        0,
    )
    assert (card.category, card.image_url, card.bullet_points, card.description) == (
        "Home > Bath",
        "https://x/y.jpg",
        "soft",
        "long",
    )


def test_new_product_becomes_searchable(make_product):
    make_product(external_id="T1", title="Bath towel")
    assert found("towel") == ["T1"]
    make_product(external_id="T2", title="Beach towel")
    assert sorted(found("towel")) == ["T1", "T2"]


def test_changed_product_is_reindexed(make_product):
    product = make_product(external_id="T1", title="Bath towel")
    assert found("towel") == ["T1"]
    product.title, product.updated_at = "Teapot", utcnow()
    db.session.commit()
    assert found("towel") == [] and found("teapot") == ["T1"]
    assert get_searcher().cards[product.id].title == "Teapot"


def test_deactivated_product_leaves_the_index(make_product):
    product = make_product(external_id="T1", title="Bath towel")
    make_product(external_id="T2", title="Beach towel")
    assert sorted(found("towel")) == ["T1", "T2"]
    product.is_active, product.updated_at = False, utcnow()
    db.session.commit()
    assert found("towel") == ["T2"]
    assert product.id not in get_searcher().cards
    product.is_active, product.updated_at = True, utcnow()
    db.session.commit()
    assert sorted(found("towel")) == ["T1", "T2"]


def test_inactive_product_is_never_indexed(make_product):
    make_product(external_id="T1", title="Bath towel", is_active=False)
    assert found("towel") == []


def test_sync_counts_changes_and_is_idempotent(make_product):
    make_product(external_id="T1", title="Bath towel")
    make_product(external_id="T2", title="Beach towel")
    assert sync_searcher(force=True) == 2
    assert sync_searcher(force=True) == 0  # rows inside the look-back window are re-read but unchanged


def test_row_stamped_before_the_last_sync_is_still_seen(make_product):
    make_product(external_id="T1", title="Bath towel")
    assert sync_searcher(force=True) == 1
    # A transaction that stamped its row earlier but committed later than the last sync.
    make_product(external_id="T2", title="Beach towel", updated_at=utcnow() - timedelta(seconds=2))
    assert sync_searcher(force=True) == 1
    assert sorted(found("towel")) == ["T1", "T2"]


def test_sync_waits_for_the_interval_unless_forced(app, make_product):
    app.config["INDEX_SYNC_SECONDS"] = 3600
    make_product(external_id="T1", title="Bath towel")
    assert sync_searcher() == 1  # the first sync always runs
    make_product(external_id="T2", title="Beach towel")
    assert sync_searcher() == 0
    assert found("towel") == ["T1"]
    assert sync_searcher(force=True) == 1
    assert sorted(found("towel")) == ["T1", "T2"]


def test_each_app_has_its_own_searcher(app, make_product):
    make_product(external_id="T1", title="Bath towel")
    searcher = get_searcher()
    assert get_searcher() is searcher
    assert app.extensions["kairos.searcher"].searcher is searcher
