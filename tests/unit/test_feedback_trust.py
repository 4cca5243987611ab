"""Forged feedback (webapp.services.feedback_trust): unshown products refused, implausible rates flagged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Event, ProductSignal, Visitor, utcnow
from webapp.services.feedback_export import events_since, export_feedback
from webapp.services.signal_rebuild import rebuild_signals

BOUND = 5


@pytest.fixture
def shop(app, make_product):
    app.config.update(
        FEEDBACK_MAX_PURCHASES=BOUND, FEEDBACK_MAX_ADD_TO_CARTS=BOUND, EVENTS_RATE_LIMIT="10000 per minute"
    )
    make_product(external_id="TOWEL1", title="Bath towel", price=10.0)
    make_product(external_id="MUG1", title="Coffee mug", price=6.0)


def post(client, events: list[dict]):
    return client.post("/api/events", json={"events": events})


def stored(kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(Event)
    return db.session.scalar(stmt.where(Event.type == kind) if kind else stmt)


def purchase_signal() -> float:
    db.session.expire_all()
    row = db.session.scalar(select(ProductSignal).where(ProductSignal.signal == "purchase"))
    return row.long if row else 0.0


def test_an_event_without_search_for_a_product_never_shown_is_refused(client, shop):
    response = post(client, [{"type": "purchase", "product_id": "MUG1"}])
    assert response.status_code == 400
    assert "not shown to this visitor" in response.get_json()["details"][0]["error"]
    assert stored() == 0 and purchase_signal() == 0.0


def test_a_product_page_view_or_a_search_result_makes_it_count(app, client, shop):
    assert post(client, [{"type": "add_to_cart", "product_id": "TOWEL1"}]).status_code == 400  # shown nothing yet
    assert client.get("/product/MUG1").status_code == 200
    assert post(client, [{"type": "purchase", "product_id": "MUG1"}]).status_code == 201
    client.get("/api/search", query_string={"q": "towel"})  # shown in a result list, clicked from elsewhere
    assert post(client, [{"type": "add_to_cart", "product_id": "TOWEL1"}]).status_code == 201
    # Another visitor's view is not this visitor's.
    assert post(app.test_client(), [{"type": "purchase", "product_id": "MUG1"}]).status_code == 400


def test_the_storefront_buy_button_needs_the_page_it_sits_on(client, shop):
    client.post("/buy", data={"product_id": "MUG1"})
    assert stored("purchase") == 0
    client.get("/product/MUG1")
    assert client.post("/buy", data={"product_id": "MUG1"}).status_code == 200
    assert stored("purchase") == 1


def test_clearing_history_forgets_the_views(client, shop):
    client.get("/product/MUG1")
    client.post("/history/clear")
    assert post(client, [{"type": "purchase", "product_id": "MUG1"}]).status_code == 400


def test_a_purchase_flood_is_flagged_and_left_out_of_learning_and_signals(app, client, shop):
    client.get("/product/MUG1")
    for _ in range(4):  # 20 purchases in 4 batches, the bound is 5
        assert post(client, [{"type": "purchase", "product_id": "MUG1"}] * 5).status_code == 201
    assert stored("purchase") == 20  # kept for the record (and the sender learns nothing)
    flagged = db.session.scalars(select(Event.flagged)).all()
    assert all(flagged), "the whole window's events are flagged once the bound is passed"
    visitor = db.session.scalar(select(Visitor).where(Visitor.feedback_flagged_at.is_not(None)))
    assert visitor is not None and "purchase" in visitor.feedback_flag_reason
    assert purchase_signal() == pytest.approx(BOUND, rel=1e-3)  # the first batch only; nothing after
    now = utcnow()
    assert export_feedback(now - timedelta(days=1), now + timedelta(seconds=1)).events == []
    assert events_since(None) == 0
    rebuild_signals()
    assert purchase_signal() == 0.0
    # A later click is stored flagged too, and clearing the history does not launder the events.
    client.get("/product/TOWEL1")
    assert post(client, [{"type": "click", "product_id": "TOWEL1"}]).status_code == 201
    client.post("/history/clear")
    db.session.expire_all()
    assert all(db.session.scalars(select(Event.flagged)).all())


def test_a_plausible_shopper_is_not_flagged(client, shop):
    client.get("/product/MUG1")
    client.get("/product/TOWEL1")
    body = [{"type": "add_to_cart", "product_id": "MUG1"}, {"type": "purchase", "product_id": "TOWEL1"}]
    for _ in range(BOUND):
        assert post(client, body).status_code == 201
    assert not any(db.session.scalars(select(Event.flagged)).all())
    assert purchase_signal() == pytest.approx(BOUND, rel=1e-3)


def test_clearing_the_history_between_batches_does_not_reset_the_count(app, client, shop):
    for _ in range(3):  # 4 + 4 (the bound is 5): the second batch passes it although the first was unlinked
        client.get("/product/MUG1")
        assert post(client, [{"type": "purchase", "product_id": "MUG1"}] * 4).status_code == 201
        client.post("/history/clear")
    assert db.session.scalar(select(Visitor.feedback_flagged_at)) is not None
    assert purchase_signal() == pytest.approx(4, rel=1e-3)  # only the first batch was counted


def test_a_new_window_starts_a_new_count(app, client, shop):
    client.get("/product/MUG1")
    assert post(client, [{"type": "purchase", "product_id": "MUG1"}] * 4).status_code == 201
    visitor = db.session.scalar(select(Visitor))
    visitor.rate_window_at = utcnow() - timedelta(seconds=app.config["FEEDBACK_RATE_WINDOW_SECONDS"] + 1)
    db.session.commit()
    assert post(client, [{"type": "purchase", "product_id": "MUG1"}] * 4).status_code == 201
    db.session.expire_all()
    assert db.session.scalar(select(Visitor.feedback_flagged_at)) is None
    assert db.session.scalar(select(Visitor.window_purchases)) == 4
