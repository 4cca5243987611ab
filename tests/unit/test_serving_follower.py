"""The follower thread: it alone syncs the serving state; requests only read its snapshot."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from webapp.services import serving_follower
from webapp.services.search_index import follower_runs, get_searcher, searcher_state
from webapp.services.serving_board import board_directory, read_board
from webapp.services.serving_follower import current_snapshot, start_follower, stop_follower


@pytest.fixture
def followed(app, make_product):
    make_product(external_id="T1", title="Bath towel")
    app.config["SERVING_FOLLOW_SECONDS"] = 0.02
    follower = start_follower(app)
    yield follower
    stop_follower(app)


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def found(client, text: str) -> list[str]:
    response = client.get("/api/search", query_string={"q": text})
    assert response.status_code == 200
    return [hit["product_id"] for hit in response.get_json()["results"]]


def test_start_publishes_a_snapshot_and_stop_ends_the_thread(app, followed, client, make_product):
    assert follower_runs() and followed.thread.is_alive()
    snapshot = current_snapshot()
    assert snapshot.error is None and snapshot.synced_at is not None and snapshot.age() < 5
    assert get_searcher() is snapshot.searcher and found(client, "towel") == ["T1"]
    make_product(external_id="T2", title="Beach towel")  # seen by the thread, not by this request
    assert wait_for(lambda: sorted(c.external_id for c in get_searcher().cards.values()) == ["T1", "T2"])
    (card,) = read_board(board_directory())
    assert card["worker"].endswith(f":{os.getpid()}") and card["version_id"] is None
    stop_follower(app)
    assert not followed.thread.is_alive() and not follower_runs()
    assert read_board(board_directory()) == []  # a stopped worker's card goes with it


def test_no_follower_when_turned_off(app):
    app.config["SERVING_FOLLOW_SECONDS"] = 0
    assert start_follower(app) is None and not follower_runs()


def test_requests_answer_while_the_follower_is_held_mid_sync(app, followed, client, make_product):
    """The follower stops inside the catalog sync, holding the sync's locks: searches still answer."""
    searcher = get_searcher()
    entered, release = threading.Event(), threading.Event()
    upsert = searcher.lexical.upsert

    def held(*args, **kwargs):
        entered.set()
        release.wait(10)
        return upsert(*args, **kwargs)

    searcher.lexical.upsert = held
    try:
        make_product(external_id="T2", title="Beach towel")
        assert entered.wait(5), "the follower did not start the sync"
        assert searcher_state().lock.locked()  # held inside the sync, with its lock taken
        started = time.monotonic()
        for _ in range(3):
            assert found(client, "towel") == ["T1"]  # the snapshot before the change
        assert client.get("/api/health").status_code == 200
        assert time.monotonic() - started < 5  # answered without waiting for the release
    finally:
        release.set()
    assert wait_for(lambda: "T2" in {c.external_id for c in get_searcher().cards.values()})
    assert sorted(found(client, "towel")) == ["T1", "T2"]


def test_a_database_outage_keeps_the_last_snapshot_and_health_says_degraded(app, followed, client, monkeypatch):
    before = current_snapshot()

    def away():
        raise OperationalError("SELECT products", {}, ConnectionError("connection refused"))

    monkeypatch.setattr(serving_follower, "sync_searcher", away)
    assert wait_for(lambda: current_snapshot().error is not None)
    snapshot = current_snapshot()
    assert snapshot.searcher is before.searcher and snapshot.synced_at == pytest.approx(before.synced_at, abs=1.0)
    assert found(client, "towel") == ["T1"]  # served from what the worker holds
    time.sleep(0.2)
    health = client.get("/api/health")
    body = health.get_json()
    assert health.status_code == 200 and body["status"] == "degraded"
    assert body["worker"]["error"] == "database unreachable (OperationalError)"
    assert body["worker"]["snapshot_age_s"] >= 0.2
    monkeypatch.undo()  # the database is back
    assert wait_for(lambda: current_snapshot().error is None)
    assert client.get("/api/health").get_json()["status"] == "ok"


def test_a_request_never_syncs_while_the_follower_runs(app, followed, client, monkeypatch):
    calls = []
    monkeypatch.setattr(serving_follower, "sync_serving_state", lambda: calls.append(threading.current_thread()))
    for _ in range(5):
        found(client, "towel")
    wait_for(lambda: calls)
    assert calls and threading.current_thread() not in calls  # the follower's thread only


def test_the_follower_rebuilds_suggestions_in_a_thread_of_their_own(app, followed, client, make_product, monkeypatch):
    from webapp.services import instant_suggest

    def texts() -> list[str]:
        body = client.get("/api/suggest", query_string={"q": "mug"}).get_json()
        return [s["text"] for s in body["suggestions"]]

    assert texts() == []  # built at start, before any mug existed
    release = threading.Event()
    rebuild = instant_suggest.refresh_suggest_index
    monkeypatch.setattr(instant_suggest, "refresh_suggest_index", lambda state: (release.wait(10), rebuild(state)))
    app.config["SUGGEST_REFRESH_SECONDS"] = 0.05
    make_product(external_id="M1", title="Coffee Mug")
    # The rebuild is held; the catalog sync goes on and requests never build the index themselves.
    assert wait_for(lambda: "M1" in {c.external_id for c in get_searcher().cards.values()})
    # The rebuild step comes after the catalog's in the follower's pass: wait for it to be held.
    assert wait_for(instant_suggest.suggest_state().building.locked)
    assert texts() == []
    release.set()
    assert wait_for(lambda: texts() == ["Coffee Mug"])
