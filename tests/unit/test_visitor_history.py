"""Clearing a visitor's history (webapp.services.visitor_history), through the API and the storefront."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from engine.ranking.context import PERSONAL_FEATURES
from webapp.extensions import db
from webapp.models import (
    Event,
    Experiment,
    ExperimentAssignment,
    ExperimentVariant,
    Impression,
    ProductSignal,
    SearchQuery,
    Visitor,
    utcnow,
)
from webapp.services.assignment import assign, forget_running_experiment, running_experiment
from webapp.services.context_ranking import visitor_profile
from webapp.services.search_index import get_searcher
from webapp.services.visitor_history import clear_history


@pytest.fixture
def shop(app, make_product):
    app.config.update(SIGNAL_SYNC_SECONDS=0.0)
    make_product(external_id="T1", title="Cotton towel", brand="Acme", category_path="Home > Bath", price=12.0)
    make_product(external_id="T2", title="Linen towel", brand="Zenith", category_path="Garden", price=90.0)


def vid(client) -> str:
    with client.session_transaction() as session:
        return session["vid"]


def shop_a_little(client) -> int:
    """Search, click and buy the Acme towel; returns the search id."""
    found = client.get("/api/search?q=towel").get_json()
    position = {r["product_id"]: r["position"] for r in found["results"]}
    events = [
        {"type": kind, "product_id": "T1", "search_id": found["search_id"], "position": position["T1"]}
        for kind in ("click", "purchase")
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 201
    return found["search_id"]


def personal_features(client) -> dict[str, list[float]]:
    """The personal features logged for each product of a fresh "towel" search by this client."""
    sid = client.get("/api/search?q=towel").get_json()["search_id"]
    rows = db.session.scalars(select(Impression).where(Impression.search_id == sid)).all()
    return {str(r.product_id): [r.features[name] for name in PERSONAL_FEATURES] for r in rows}


def linked(visitor_id: str) -> tuple[int, int]:
    db.session.expire_all()
    count = func.count()
    events = db.session.scalar(select(count).select_from(Event).where(Event.visitor_id == visitor_id))
    searches = db.session.scalar(select(count).select_from(SearchQuery).where(SearchQuery.visitor_id == visitor_id))
    return events, searches


def profile_of(visitor_id: str):
    return visitor_profile(visitor_id, get_searcher(), None, utcnow())


def test_clearing_makes_the_next_search_cold_start(shop, client):
    shop_a_little(client)
    visitor = vid(client)
    assert profile_of(visitor).brands == {"acme": 1.0}
    assert any(any(values) for values in personal_features(client).values())
    response = client.post("/api/visitor/history/clear")
    assert response.status_code == 200 and response.get_json() == {"cleared": 2 + 2}  # 2 events, 2 searches
    assert linked(visitor) == (0, 0)
    assert db.session.scalar(select(func.count()).where(SearchQuery.client_hash.is_not(None))) == 0
    assert profile_of(visitor) is None
    assert all(values == [0.0, 0.0, 0.0, 0.0] for values in personal_features(client).values())


def test_another_visitors_history_is_untouched(shop, app, client):
    shop_a_little(client)
    other = app.test_client()
    shop_a_little(other)
    before = linked(vid(other))
    assert client.post("/api/visitor/history/clear").status_code == 200
    assert linked(vid(other)) == before == (2, 1)
    assert profile_of(vid(other)).brands == {"acme": 1.0}


def test_cleared_events_still_count_for_the_shop(shop, client):
    shop_a_little(client)
    events_before = db.session.scalar(select(func.count()).select_from(Event))
    signals = {(s.product_id, s.signal): (s.short, s.long, s.stamp) for s in db.session.scalars(select(ProductSignal))}
    assert client.post("/api/visitor/history/clear").status_code == 200
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Event)) == events_before
    after = {(s.product_id, s.signal): (s.short, s.long, s.stamp) for s in db.session.scalars(select(ProductSignal))}
    assert after == signals and any(signal == "purchase" for _, signal in after)
    now = utcnow().timestamp()
    assert get_searcher().board.activity(db.session.scalar(select(Event.product_id)), now).purchase[1] > 0


def test_a_visitor_with_no_history_gets_200(shop, client):
    response = client.post("/api/visitor/history/clear")
    assert response.status_code == 200 and response.get_json() == {"cleared": 0}
    assert db.session.scalar(select(func.count()).select_from(Visitor)) == 0  # nothing made up for them


def test_feedback_on_a_search_from_before_clearing_is_refused(shop, client):
    sid = shop_a_little(client)
    client.post("/api/visitor/history/clear")
    response = client.post("/api/events", json={"events": [{"type": "click", "product_id": "T1", "search_id": sid}]})
    assert response.status_code == 400 and "unknown search" in response.get_json()["details"][0]["error"]


def test_the_experiment_assignment_stays_so_the_variant_is_sticky(shop, client):
    visitor = "33333333-3333-4333-8333-333333333333"
    with client.session_transaction() as session:
        session["vid"] = visitor
    experiment = Experiment(name="e", salt="s", status="running")
    db.session.add_all([Visitor(id=visitor), experiment])
    db.session.flush()
    arms = [
        ExperimentVariant(experiment_id=experiment.id, name=name, is_control=name == "a", traffic_share=0.5)
        for name in ("a", "b")
    ]
    db.session.add_all(arms)
    db.session.flush()
    # Stored in the arm the hash would NOT pick: only the kept row can keep the visitor there.
    hashed = assign(running_experiment(), visitor).id
    (stored,) = [arm.id for arm in arms if arm.id != hashed]
    db.session.add(ExperimentAssignment(experiment_id=experiment.id, variant_id=stored, visitor_id=visitor))
    db.session.commit()
    forget_running_experiment()
    shop_a_little(client)
    assert clear_history(visitor) == 3  # one search, two events
    sid = client.get("/api/search?q=towel").get_json()["search_id"]
    assert db.session.get(SearchQuery, sid).variant_id == stored
    kept = db.session.scalars(select(ExperimentAssignment).where(ExperimentAssignment.visitor_id == visitor)).all()
    assert [a.variant_id for a in kept] == [stored]


def test_the_storefront_button_clears_with_a_csrf_token(shop, app, client):
    shop_a_little(client)
    visitor = vid(client)
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/cart").get_data(as_text=True)
    assert "Clear my history" in page
    assert client.post("/history/clear").status_code == 400  # no token: refused, nothing cleared
    assert linked(visitor) == (2, 1)
    token = re.search(r'action="/history/clear">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page)
    response = client.post("/history/clear", data={"csrf_token": token.group(1)}, follow_redirects=True)
    assert response.status_code == 200 and "Your history is cleared" in response.get_data(as_text=True)
    assert linked(visitor) == (0, 0) and profile_of(visitor) is None
