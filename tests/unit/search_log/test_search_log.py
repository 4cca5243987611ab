"""The search log written after the response (webapp.services.search_log and its store), on SQLite
and PostgreSQL: journal lines become rows, clicks wait for them, faults lose nothing."""

from __future__ import annotations

import json
import os
import time

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tests.unit.search_log.support import VISITOR, as_visitor, count
from webapp.extensions import db
from webapp.models import Event, Impression, Product, SearchQuery, Visitor, utcnow
from webapp.services import search_log_store
from webapp.services.search_log import search_log_for, start_search_log, stop_search_log
from webapp.services.search_log_store import REJECTED, decode_record, encode_record, store_records


def test_a_search_is_answered_with_its_id_and_stored_by_the_next_flush(client, search_log):
    as_visitor(client)
    found = client.get("/api/search?q=towel").get_json()
    assert found["search_id"] and len(found["results"]) == 2
    assert count(SearchQuery) == 0  # journaled, not written in the request

    assert search_log.flush() == 1
    row = db.session.get(SearchQuery, found["search_id"])
    assert row.text == "towel" and row.visitor_id == VISITOR and row.result_count == 2
    shown = db.session.scalars(select(Impression).where(Impression.search_id == row.id)).all()
    external = {p.id: p.external_id for p in db.session.scalars(select(Product))}
    assert sorted((i.position, external[i.product_id]) for i in shown) == sorted(
        (r["position"], r["product_id"]) for r in found["results"]
    )
    assert all(i.features is not None for i in shown)  # stage 2's features, as the shopper saw them
    assert db.session.get(Visitor, VISITOR) is not None  # a first-time visitor's row comes with their search


def test_a_journal_line_keeps_every_value_and_the_features_as_sent(app, shop):
    features = {"trend": 0.12345, "fresh": 1.0, "explore": 0.0, "label": 'tab\there, quote" and \u001f'}
    row = {
        "visitor_id": VISITOR, "text": "towel\tx", "normalized": "towel x", "filters": {"brand": ["Acme"]},
        "sort": "relevance", "page": 2, "result_count": 2, "latency_ms": 3.25, "source": "api", "fuzzy": True,
        "variant_id": None, "created_at": utcnow(),
    }  # fmt: skip
    products = sorted(db.session.scalars(select(Product.id)))
    shown = [
        {"product_id": products[0], "position": 1, "ranker": "rrf:v1", "model_version_id": None, "features": features},
        {"product_id": products[1], "position": 2, "ranker": "rrf:v1", "model_version_id": None, "features": None},
    ]
    line = encode_record(41, row, shown)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    record = decode_record(line[:-1])
    assert record["id"] == 41 and record["search"] == row
    assert [json.loads(i["features"]) if i["features"] else None for i in record["impressions"]] == [features, None]
    assert decode_record(encode_record(42, row, [])[:-1])["impressions"] == []

    assert store_records([record]) == 1
    db.session.commit()
    stored = db.session.scalars(select(Impression).where(Impression.search_id == 41).order_by(Impression.position))
    assert [i.features for i in stored] == [features, None]
    assert db.session.get(SearchQuery, 41).filters == {"brand": ["Acme"]}


def test_a_click_on_a_search_not_stored_yet_waits_for_it(client, search_log):
    as_visitor(client)
    found = client.get("/api/search?q=mug").get_json()
    click = {"type": "click", "product_id": "M1", "search_id": found["search_id"], "position": 1}
    response = client.post("/api/events", json={"events": [click]})
    assert response.status_code == 201, response.get_json()
    assert count(Event) == 1 and count(SearchQuery) == 1


def test_an_id_never_handed_out_is_refused_without_waiting(client, search_log, app):
    app.config["SEARCH_LOG_WAIT_SECONDS"] = 60.0
    as_visitor(client)
    client.get("/api/search?q=mug")
    started = time.monotonic()
    click = {"type": "click", "product_id": "M1", "search_id": 2_000_000, "position": 1}
    response = client.post("/api/events", json={"events": [click]})
    assert response.status_code == 400 and "unknown search" in response.get_data(as_text=True)
    assert time.monotonic() - started < 30  # did not sit out the wait


def test_replaying_a_journal_stores_nothing_twice(client, search_log):
    as_visitor(client)
    ids = [client.get(f"/api/search?q={q}").get_json()["search_id"] for q in ("towel", "mug", "towel")]
    assert search_log.flush() == 3
    before = (count(SearchQuery), count(Impression))
    search_log.journal.written = 0  # a worker killed after the commit, before its bookkeeping
    assert search_log.flush() == 0
    assert (count(SearchQuery), count(Impression)) == before
    assert sorted(db.session.scalars(select(SearchQuery.id))) == sorted(ids)


def test_the_journal_keeps_everything_while_the_database_is_away(client, search_log, monkeypatch):
    as_visitor(client)
    ids = [client.get(f"/api/search?q={q}").get_json()["search_id"] for q in ("towel", "mug")]

    def away(records):
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(search_log_store, "store_records", away)
    with pytest.raises(OperationalError):
        search_log.flush()
    assert search_log.journal.written == 0
    monkeypatch.undo()
    assert search_log.flush() == 2 and sorted(db.session.scalars(select(SearchQuery.id))) == sorted(ids)


def test_a_refused_line_is_set_aside_and_the_rest_stored(client, search_log, app):
    as_visitor(client)
    good = client.get("/api/search?q=towel").get_json()["search_id"]
    bad_row = {
        "visitor_id": None, "text": "x", "normalized": "x", "filters": {}, "sort": "relevance", "page": 1,
        "result_count": 1, "latency_ms": 1.0, "source": "api", "fuzzy": False, "variant_id": None,
        "created_at": utcnow(),
    }  # fmt: skip
    shown = [{"product_id": 999_999, "position": 1, "ranker": "lexical", "model_version_id": None, "features": None}]
    search_log.journal.append(encode_record(10_000_000, bad_row, shown))  # no such product: the FK refuses it
    search_log.journal.append(b"{not json\n")
    after = client.get("/api/search?q=mug").get_json()["search_id"]

    assert search_log.flush() == 2
    assert sorted(db.session.scalars(select(SearchQuery.id))) == sorted([good, after])
    with open(os.path.join(search_log.journal.directory, REJECTED), "rb") as rejected:
        lines = rejected.read().splitlines()
    assert sorted(lines) == sorted([b"{not json", encode_record(10_000_000, bad_row, shown)[:-1]])
    assert search_log.journal.written == search_log.journal.appended  # nothing held back


def test_searches_answered_before_clearing_history_are_stored_unlinked(client, search_log):
    as_visitor(client)
    before = client.get("/api/search?q=towel").get_json()["search_id"]
    assert client.post("/api/visitor/history/clear").status_code == 200
    time.sleep(0.002)  # the clock moves past the clearing moment
    after = client.get("/api/search?q=mug").get_json()["search_id"]
    search_log.flush()
    assert db.session.get(SearchQuery, before).visitor_id is None
    assert db.session.get(SearchQuery, after).visitor_id == VISITOR


def test_stopping_stores_the_rest_and_removes_the_journal(client, app, shop):
    app.config.update(SEARCH_LOG_FLUSH_SECONDS=3600.0)
    started = start_search_log(app)
    as_visitor(client)
    sid = client.get("/api/search?q=towel").get_json()["search_id"]
    stop_search_log(app)
    assert db.session.get(SearchQuery, sid) is not None
    assert not os.path.exists(started.journal.path) and search_log_for(app) is None


def test_the_thread_stores_on_its_interval(client, app, shop):
    app.config.update(SEARCH_LOG_FLUSH_SECONDS=0.02)
    start_search_log(app)
    try:
        as_visitor(client)
        sid = client.get("/api/search?q=towel").get_json()["search_id"]
        deadline = time.monotonic() + 10
        while db.session.get(SearchQuery, sid) is None and time.monotonic() < deadline:
            db.session.remove()
            time.sleep(0.02)
        assert db.session.get(SearchQuery, sid) is not None
    finally:
        stop_search_log(app)


def test_without_the_log_searches_are_written_in_the_request(client, shop):
    as_visitor(client)
    sid = client.get("/api/search?q=towel").get_json()["search_id"]
    assert db.session.get(SearchQuery, sid) is not None and count(Impression) == 2


def test_a_click_answers_503_when_the_database_cuts_every_connection_while_it_waits(
    client, search_log, app, monkeypatch
):
    """The restart that fails the wait's own connection has cut the session's too: 503, not 500."""
    as_visitor(client)
    found = client.get("/api/search?q=mug").get_json()  # journaled, not stored: the click will wait
    cut = OperationalError("ROLLBACK", {}, Exception("terminating connection due to administrator command"))

    def restart(ids):
        raise cut

    real_rollback = db.session.rollback
    calls = []

    def rollback_on_a_cut_connection():
        calls.append(1)
        if len(calls) == 1:
            raise cut
        real_rollback()

    monkeypatch.setattr(search_log, "wait_for", restart)
    monkeypatch.setattr(db.session, "rollback", rollback_on_a_cut_connection)
    click = {"type": "click", "product_id": "M1", "search_id": found["search_id"], "position": 1}
    response = client.post("/api/events", json={"events": [click]})
    assert response.status_code == 503 and "briefly unavailable" in response.get_json()["error"]
    assert calls  # the handler's rollback was the one that failed
