"""Price cuts and restocks stamped on save (webapp.models.product_changes), whichever path saved the
product, and carried to the worker's ProductCard for the freshness features."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Product, epoch, utcnow
from webapp.services.catalog_import import import_catalog
from webapp.services.search_index import get_searcher


def stored(external_id: str) -> Product:
    db.session.expire_all()
    return db.session.scalar(select(Product).where(Product.external_id == external_id))


def admin_form(product: Product, **change) -> dict:
    form = {**product.to_dict(), **change}
    return {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in form.items()}


def write_bulk(path, records: list[dict]) -> str:
    lines = []
    for record in records:
        lines += [json.dumps({"index": {"_id": record["asin"]}}), json.dumps(record)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_a_price_cut_in_the_admin_is_stamped_and_reaches_the_card(client, login, make_product):
    login("admin")
    item = make_product(external_id="T1", title="Bath towel", price=20.0)
    assert get_searcher().cards[item.id].price_drop == 0.0
    before = utcnow()
    assert client.post(f"/admin/catalog/{item.id}", data=admin_form(item, price="15")).status_code == 302
    cut = stored("T1")
    assert cut.price == 15.0 and cut.price_drop == pytest.approx(0.25)
    assert before <= cut.price_dropped_at <= utcnow()
    card = get_searcher().cards[item.id]
    assert card.price_drop == pytest.approx(0.25) and card.price_dropped_at == pytest.approx(
        epoch(cut.price_dropped_at)
    )
    # An edit that leaves the price alone keeps the stamp; a raise undoes it.
    client.post(f"/admin/catalog/{item.id}", data=admin_form(cut, title="Big bath towel"))
    assert stored("T1").price_drop == pytest.approx(0.25) and stored("T1").price_dropped_at == cut.price_dropped_at
    client.post(f"/admin/catalog/{item.id}", data=admin_form(stored("T1"), price="22"))
    raised = stored("T1")
    assert raised.price_drop == 0.0 and raised.price_dropped_at is None
    assert get_searcher().cards[item.id].price_drop == 0.0 and get_searcher().cards[item.id].price_dropped_at is None


def test_a_new_product_or_a_new_price_from_nothing_is_no_cut(app, client, login, make_product):
    login("admin")
    item = make_product(external_id="T2", title="Hand towel", price=None)
    client.post(f"/admin/catalog/{item.id}", data=admin_form(item, price="9"))
    assert stored("T2").price == 9.0 and stored("T2").price_dropped_at is None
    assert make_product(external_id="T3", price=5.0).price_dropped_at is None


def test_a_restock_through_the_catalog_import_is_stamped_and_reaches_the_card(app, tmp_path, make_product):
    item = make_product(external_id="A1", title="Cotton bath towel", price=12.5, in_stock=False)
    assert get_searcher().cards[item.id].restocked_at is None
    record = {"asin": "A1", "title": "Cotton bath towel", "brand": "Acme", "price": 12.5, "in_stock": True}
    before = utcnow()
    report = import_catalog(write_bulk(tmp_path / "restock.ndjson", [record]))
    assert report.updated == 1
    restocked = stored("A1")
    assert restocked.in_stock and before <= restocked.restocked_at <= utcnow()
    assert restocked.price_dropped_at is None  # the price did not move
    assert get_searcher().cards[item.id].restocked_at == pytest.approx(epoch(restocked.restocked_at))
    # The same file again changes nothing; selling out clears the stamp.
    assert import_catalog(write_bulk(tmp_path / "same.ndjson", [record])).unchanged == 1
    assert stored("A1").restocked_at == restocked.restocked_at
    import_catalog(write_bulk(tmp_path / "gone.ndjson", [{**record, "in_stock": False}]))
    assert stored("A1").restocked_at is None and get_searcher().cards[item.id].restocked_at is None


def test_an_import_price_cut_is_stamped_too(app, tmp_path, make_product):
    item = make_product(external_id="A2", title="Coffee mug", price=10.0, updated_at=utcnow() - timedelta(days=1))
    import_catalog(write_bulk(tmp_path / "cut.ndjson", [{"asin": "A2", "title": "Coffee mug", "price": 7.5}]))
    assert stored("A2").price_drop == pytest.approx(0.25)
    assert get_searcher().cards[item.id].price_drop == pytest.approx(0.25)
