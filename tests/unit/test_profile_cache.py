"""The session profile is kept per visitor until their next event (webapp.services.context_ranking)."""

from __future__ import annotations

import pytest

# The same two-towel shop (Acme in Home, Zenith in Garden) and cookie reader as the history tests.
from tests.unit.test_visitor_history import shop, vid  # noqa: F401
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
