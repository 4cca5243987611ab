"""Searches correct misspellings from the shop's vocabulary (webapp.services.spelling): the page
says what it searched, offers the typed text, and the log keeps both; the API returns it too."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import SearchQuery, Visitor, utcnow
from webapp.services import spelling
from webapp.services.client_hash import client_hash
from webapp.services.serving_follower import start_follower, stop_follower


@pytest.fixture
def catalog(make_product):
    make_product(external_id="W1", title="Wireless Mouse for Laptop", brand="Logi")
    make_product(external_id="W2", title="Wireless Keyboard", brand="Logi")
    make_product(external_id="G1", title="Mouse Trap Board Game", brand="Toyco")
    make_product(external_id="C1", title="Minnie Mouse Costume", brand="Toyco")


def logged() -> SearchQuery:
    return db.session.scalars(select(SearchQuery).order_by(SearchQuery.id.desc())).first()


def test_a_misspelled_query_shows_the_correction_and_the_way_back(client, catalog):
    page = client.get("/search?q=wireles+mouse").get_data(as_text=True)
    assert "Showing results for <strong>wireless mouse</strong>" in page
    assert 'href="/search?q=wireles+mouse&amp;spell=0&amp;page=1">wireles mouse</a>' in page
    assert "Wireless Mouse for Laptop" in page
    row = logged()
    assert (row.text, row.normalized, row.corrected_text) == ("wireles mouse", "wireles mouse", "wireless mouse")
    instead = client.get("/search?q=wireles+mouse&spell=0").get_data(as_text=True)
    assert "Showing results for" not in instead and logged().corrected_text is None
    assert 'name="spell" value="0"' in instead  # filtering keeps the choice


def test_correct_spelling_is_left_alone(client, catalog):
    assert "Showing results for" not in client.get("/search?q=wireless+mouse").get_data(as_text=True)
    assert logged().corrected_text is None


def test_the_api_returns_the_correction(client, catalog):
    body = client.get("/api/search", query_string={"q": "wireles keybord"}).get_json()
    assert body["query"] == "wireles keybord" and body["corrected_query"] == "wireless keyboard"
    assert [r["product_id"] for r in body["results"]][:1] == ["W2"]
    assert client.get("/api/search", query_string={"q": "wireles", "spell": "0"}).get_json()["corrected_query"] is None
    response = client.get("/api/search", query_string={"q": "x", "spell": "maybe"})
    assert response.status_code == 400 and response.get_json() == {"error": "spell must be 0 or 1"}


def test_logged_words_that_everyone_may_see_join_the_vocabulary(app, client, catalog):
    for n, hours_ago in enumerate((1, 5)):
        db.session.add(Visitor(id=f"v{n}"))
        db.session.flush()
        db.session.add(
            SearchQuery(
                text="ergonomic mouse",
                normalized="ergonomic mouse",
                result_count=2,
                visitor_id=f"v{n}",
                client_hash=client_hash(f"198.51.{n}.1", "k"),
                created_at=utcnow() - timedelta(hours=hours_ago),
            )
        )
    db.session.commit()
    body = client.get("/api/search", query_string={"q": "ergonomc mouse"}).get_json()
    assert body["corrected_query"] == "ergonomic mouse"


def test_correction_can_be_switched_off(app, client, catalog):
    app.config["SPELLING_CORRECTION"] = False
    assert client.get("/api/search", query_string={"q": "wireles mouse"}).get_json()["corrected_query"] is None


def test_with_a_follower_a_request_never_builds_the_vocabulary(app, client, catalog, make_product, monkeypatch):
    """The follower builds the corrector off the request path, again when the catalog changes;
    requests only read the last one built, and search uncorrected while the first is building."""
    builders: list[str] = []
    release = threading.Event()
    build = spelling.catalog_vocabulary

    def recorded(cards):
        builders.append(threading.current_thread().name)
        release.wait(10)  # the first build is held until the test lets it go
        return build(cards)

    monkeypatch.setattr(spelling, "catalog_vocabulary", recorded)
    app.config.update(SERVING_FOLLOW_SECONDS=0.02, SUGGEST_REFRESH_SECONDS=3600.0)
    start_follower(app)

    def corrected(text: str) -> str | None:
        return client.get("/api/search", query_string={"q": text}).get_json()["corrected_query"]

    def eventually(text: str, expected: str) -> bool:
        deadline = time.monotonic() + 5
        while corrected(text) != expected and time.monotonic() < deadline:
            time.sleep(0.02)
        return corrected(text) == expected

    try:
        started = time.monotonic()
        assert corrected("wireles keybord") is None  # the first corrector is still building
        assert time.monotonic() - started < 5  # and the request did not wait for it
        release.set()
        assert eventually("wireles keybord", "wireless keyboard")
        make_product(external_id="P1", title="Porcelain Teapot", brand="Kettleworks")
        assert eventually("porcelian teapot", "porcelain teapot")  # rebuilt for the change, not the hour
    finally:
        release.set()
        stop_follower(app)
    assert len(builders) >= 2 and set(builders) == {"spelling-rebuild"}
