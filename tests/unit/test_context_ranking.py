"""A visitor's profile as the web reads it (webapp.services.context_ranking): events and what they were shown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

# The same two-towel shop (Acme in Home, Zenith in Garden) and cookie reader as the history tests.
from tests.unit.test_visitor_history import shop, vid  # noqa: F401
from webapp.extensions import db
from webapp.models import SearchQuery, utcnow
from webapp.services import context_ranking
from webapp.services.context_ranking import recent_exposures, visitor_profile
from webapp.services.search_index import get_searcher


def search(client) -> dict[str, int]:
    """Search "towel"; returns the search id and each product's position by external id."""
    found = client.get("/api/search?q=towel").get_json()
    return {"search_id": found["search_id"], **{r["product_id"]: r["position"] for r in found["results"]}}


@pytest.mark.usefixtures("shop")
def test_brand_affinity_weighs_engagement_against_what_was_shown(client):
    shown = search(client)
    events = [
        {"type": kind, "product_id": "T1", "search_id": shown["search_id"], "position": shown["T1"]}
        for kind in ("click", "purchase")
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 201
    profile = visitor_profile(vid(client), get_searcher(), None, utcnow())
    assert profile.brands == {"acme": 1.0}  # the share of engagement, as before
    # Engaged 1 + 3 over examinations 1/p(T1) + 1/p(T2) = 1.5.
    rate = 4.0 / 1.5
    assert profile.brand_affinity == {
        "acme": pytest.approx(4.0 - rate / shown["T1"], abs=0.01),
        "zenith": pytest.approx(-rate / shown["T2"], abs=0.01),
    }
    assert profile.category_affinity["home"] == pytest.approx(profile.brand_affinity["acme"])


@pytest.mark.usefixtures("shop")
def test_exposures_are_the_visitors_own_last_searches_in_the_window(app, client, monkeypatch):
    first, second = search(client)["search_id"], search(client)["search_id"]
    other = app.test_client()
    search(other)
    visitor, now = vid(client), utcnow()
    assert sorted(e.position for e in recent_exposures(visitor, now)) == [1, 1, 2, 2]
    monkeypatch.setattr(context_ranking, "PROFILE_SEARCHES", 1)
    assert sorted(e.position for e in recent_exposures(visitor, now)) == [1, 2]
    monkeypatch.undo()
    too_old = now - timedelta(hours=app.config["PROFILE_WINDOW_HOURS"] + 1)
    db.session.execute(update(SearchQuery).where(SearchQuery.id == first).values(created_at=too_old))
    db.session.commit()
    assert {e.at for e in recent_exposures(visitor, now)} == {
        context_ranking.epoch(db.session.get(SearchQuery, second).created_at)
    }


@pytest.mark.usefixtures("shop")
def test_no_events_no_profile_even_with_searches(client):
    search(client)
    assert (
        recent_exposures(vid(client), utcnow()) and visitor_profile(vid(client), get_searcher(), None, utcnow()) is None
    )
