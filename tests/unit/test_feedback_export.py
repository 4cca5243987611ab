"""Exporting the feedback window from the database as plain records (read-only)."""

from __future__ import annotations

from datetime import timedelta

from engine.training.dataset import build_dataset
from webapp.extensions import db
from webapp.models import Event, Impression, Job, SearchQuery, Visitor, utcnow
from webapp.services.feedback_export import events_since, export_feedback, last_successful_run


def logged_search(text: str, products: list, when, page: int = 1) -> SearchQuery:
    search = SearchQuery(visitor_id="v1", text=text, normalized=text.lower(), page=page, created_at=when)
    db.session.add(search)
    db.session.flush()
    for position, product in enumerate(products, start=1):
        db.session.add(Impression(search_id=search.id, product_id=product.id, position=position))
    return search


def test_the_window_its_impressions_events_and_catalog(app, make_product):
    db.session.add(Visitor(id="v1"))
    mug, lamp, gone = (make_product(title=t, category_path="Home > Kitchen") for t in ("mug", "lamp", "old mug"))
    now = utcnow()
    recent = logged_search("Mug", [mug, lamp, gone], now - timedelta(hours=1))
    old = logged_search("mug", [mug], now - timedelta(days=40))
    later_page = logged_search("mug", [lamp], now - timedelta(hours=1), page=2)
    db.session.add_all(
        [
            Event(type="click", visitor_id="v1", product_id=mug.id, search_id=recent.id, position=1, created_at=now),
            Event(
                type="purchase", visitor_id="v1", product_id=gone.id, search_id=recent.id, position=3, created_at=now
            ),
            Event(type="click", visitor_id="v1", product_id=mug.id, search_id=old.id, position=1, created_at=now),
            Event(type="click", visitor_id="v1", product_id=mug.id, created_at=now - timedelta(days=60)),
        ]
    )
    gone.is_active = False  # deleted from the catalog after it was shown and bought
    db.session.commit()

    log = export_feedback(now - timedelta(days=30), now + timedelta(seconds=1), max_position=2)
    assert [(s.search_id, s.query) for s in log.searches] == [(recent.id, "Mug")]  # page 2 and old ones left out
    assert later_page.id not in {i.search_id for i in log.impressions}
    assert sorted((i.product_id, i.position) for i in log.impressions) == [(mug.id, 1), (lamp.id, 2)]
    assert len(log.events) == 3 and {p.product_id for p in log.products} == {mug.id, lamp.id}
    assert log.products[0].text.startswith("mug") and log.products[0].category == "Home > Kitchen"

    data = build_dataset(log, lambda position: 1.0, now)
    assert data.counts["skipped_events_unknown_product"] == 1  # the purchase of the deleted product
    assert data.counts["skipped_events_unknown_search"] == 1  # a click on a search outside the window
    assert {e.product_id for e in data.examples if e.click > 0} == {mug.id}


def test_new_feedback_is_counted_since_the_last_successful_run(app, make_product):
    product = make_product()
    assert last_successful_run() is None and events_since(None) == 0
    db.session.add(Event(type="click", product_id=product.id, created_at=utcnow() - timedelta(hours=2)))
    finished = Job(kind="fine_tune", status="succeeded", created_at=utcnow() - timedelta(hours=1))
    db.session.add_all([finished, Job(kind="fine_tune", status="failed", created_at=utcnow())])
    db.session.add(Event(type="click", product_id=product.id, created_at=utcnow()))
    db.session.commit()
    assert last_successful_run() == finished.created_at
    assert events_since(None) == 2 and events_since(last_successful_run()) == 1
