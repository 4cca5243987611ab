"""Impression counts are summed per worker and written in batches; the mirror reads them less often
than clicks and purchases (webapp.services.signals, webapp.services.signal_sync)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.models import Product, ProductSignal
from webapp.services import impression_flush
from webapp.services.impression_flush import buffer_for, flush_impressions, stop_impression_writer
from webapp.services.search_index import get_searcher
from webapp.services.signal_sync import sync_signals


@pytest.fixture
def shop(app, make_product):
    app.config.update(
        SIGNAL_SYNC_SECONDS=0.0, SEARCH_RATE_LIMIT="10000 per minute", EVENTS_RATE_LIMIT="10000 per minute"
    )
    make_product(external_id="TOWEL", title="Cotton towel")


def towel() -> int:
    return db.session.scalar(select(Product.id).where(Product.external_id == "TOWEL"))


def impressions_stored() -> float:
    db.session.expire_all()
    row = db.session.scalar(
        select(ProductSignal).where(ProductSignal.product_id == towel(), ProductSignal.signal == "impression")
    )
    return 0.0 if row is None else row.long


def test_impressions_wait_for_the_flush_and_then_all_count(app, client, shop):
    app.config["SIGNAL_IMPRESSION_FLUSH_SECONDS"] = 3600.0  # the writer thread sleeps through the test
    for _ in range(3):
        assert client.get("/api/search?q=towel").status_code == 200
    assert impressions_stored() == 0.0  # summed in the worker, not yet written
    assert buffer_for(app).thread.is_alive()
    assert flush_impressions(app) == 3  # what the writer thread does every interval
    assert impressions_stored() == pytest.approx(3.0, rel=1e-3)
    assert flush_impressions(app) == 0  # nothing counted twice


def test_the_writer_thread_flushes_on_its_own(app, client, shop):
    app.config["SIGNAL_IMPRESSION_FLUSH_SECONDS"] = 0.05
    assert client.get("/api/search?q=towel").status_code == 200
    deadline = time.monotonic() + 5
    while impressions_stored() == 0.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert impressions_stored() == pytest.approx(1.0, rel=1e-3)


def test_a_failed_flush_keeps_the_counts_for_the_next(app, client, shop, monkeypatch):
    app.config["SIGNAL_IMPRESSION_FLUSH_SECONDS"] = 3600.0
    for _ in range(2):
        assert client.get("/api/search?q=towel").status_code == 200

    def database_away(_shown):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(impression_flush, "record_impressions", database_away)
    with pytest.raises(OperationalError):
        flush_impressions(app)
    monkeypatch.undo()
    assert impressions_stored() == 0.0
    assert flush_impressions(app) == 2
    assert impressions_stored() == pytest.approx(2.0, rel=1e-3)


def test_the_mirror_reads_actions_every_interval_and_impressions_when_due(app, client, shop):
    app.config["SIGNAL_IMPRESSION_SYNC_SECONDS"] = 3600.0
    board = get_searcher().board
    sync_signals(board, force=True)  # the first sync reads everything and starts the impression clock
    answer = client.get("/api/search?q=towel").get_json()  # writes an impression count (flush is 0 in tests)
    event = {"type": "click", "product_id": "TOWEL", "search_id": answer["search_id"], "position": 1}
    assert client.post("/api/events", json={"events": [event]}).status_code == 201
    sync_signals(board)
    now = time.time()
    activity = board.activity(towel(), now)
    assert activity.click[1] == pytest.approx(1.0, rel=1e-3)  # actions: at once
    assert activity.impression[1] == 0.0  # impressions: not before the impression interval
    sync_signals(board, force=True)
    assert board.activity(towel(), now).impression[1] == pytest.approx(1.0, rel=1e-3)


def test_stopping_the_writer_writes_what_it_holds_and_leaves_no_thread_behind(app, client, shop, caplog):
    app.config["SIGNAL_IMPRESSION_FLUSH_SECONDS"] = 0.05
    for _ in range(2):
        assert client.get("/api/search?q=towel").status_code == 200
    thread = buffer_for(app).thread
    assert stop_impression_writer(app) in (0, 2)  # the thread may have written them first
    assert not thread.is_alive() and impressions_stored() == pytest.approx(2.0, rel=1e-3)
    # The tables go (as a test's teardown drops them): no thread is left to write into them.
    db.session.remove()
    db.drop_all()
    time.sleep(0.3)
    assert not thread.is_alive()
    assert "no such table" not in caplog.text and "not written" not in caplog.text
