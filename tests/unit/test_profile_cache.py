"""The session profile is kept per visitor until their next event (webapp.services.context_ranking)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

# The same two-towel shop (Acme in Home, Zenith in Garden) and cookie reader as the history tests.
from tests.unit.test_visitor_history import shop, vid  # noqa: F401
from webapp.extensions import db
from webapp.models import utcnow
from webapp.services.context_ranking import visitor_profile
from webapp.services.search_index import get_searcher


def act(client, kind: str, product: str) -> None:
    found = client.get("/api/search?q=towel").get_json()
    position = next(r["position"] for r in found["results"] if r["product_id"] == product)
    event = {"type": kind, "product_id": product, "search_id": found["search_id"], "position": position}
    assert client.post("/api/events", json={"events": [event]}).status_code == 201


@pytest.mark.usefixtures("shop")
def test_searches_reuse_the_profile_and_an_event_rebuilds_it(client):
    act(client, "click", "T1")
    first = visitor_profile(vid(client), get_searcher(), None, utcnow())
    client.get("/api/search?q=towel")  # browsing alone leaves the profile as it was
    assert visitor_profile(vid(client), get_searcher(), None, utcnow()) is first
    act(client, "purchase", "T2")
    rebuilt = visitor_profile(vid(client), get_searcher(), None, utcnow())
    assert rebuilt is not first and rebuilt.brands["zenith"] > first.brands.get("zenith", 0.0)


@pytest.mark.usefixtures("shop")
def test_a_cleared_history_is_never_served_from_the_cache(client):
    act(client, "click", "T1")
    assert visitor_profile(vid(client), get_searcher(), None, utcnow()) is not None
    assert client.post("/api/visitor/history/clear").status_code == 200
    assert visitor_profile(vid(client), get_searcher(), None, utcnow()) is None


@pytest.fixture
def event_reads(app):
    """The SELECTs on the events table this app runs, as they run."""
    seen: list[str] = []

    def look(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM events" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", look)
    yield seen
    event.remove(db.engine, "before_cursor_execute", look)


@pytest.mark.usefixtures("shop")
def test_a_visitor_without_feedback_searches_without_reading_events(client, event_reads):
    """The cookie given with a new visitor id says "no feedback yet" until their first event."""
    for _ in range(3):
        assert client.get("/api/search?q=towel").status_code == 200
        assert client.get("/search?q=towel").status_code == 200
    assert event_reads == []
    act(client, "click", "T1")  # their first event: from now on their searches read them
    event_reads.clear()
    personal = client.get("/api/search?q=towel").get_json()
    assert personal["results"] and event_reads
    assert visitor_profile(vid(client), get_searcher(), None, utcnow()).brands["acme"] > 0


@pytest.mark.usefixtures("shop")
def test_a_cookie_given_before_the_mark_reads_events_as_before(client, event_reads):
    with client.session_transaction() as session:
        session["vid"] = "visitor-from-last-year"  # an id without the no-feedback mark
    assert client.get("/api/search?q=towel").status_code == 200
    assert event_reads


@pytest.mark.usefixtures("shop")
def test_feedback_from_the_storefront_also_drops_the_mark(client, event_reads):
    page = client.get("/search?q=towel").get_data(as_text=True)
    sid, pos = re.search(r'href="/product/T1\?sid=(\d+)&amp;pos=(\d+)"', page).groups()
    assert client.get(f"/product/T1?sid={sid}&pos={pos}").status_code == 200
    event_reads.clear()
    assert client.get("/search?q=towel").status_code == 200
    assert event_reads
