"""The search log written after the response (webapp.services.search_log), on SQLite and PostgreSQL.

The log's thread is started with a long interval so each test decides when a flush happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.models import Event, Impression, Product, SearchQuery, Visitor, utcnow
from webapp.services import search_log as search_log_module
from webapp.services.search_ids import IdReserve, issued_below, reserve
from webapp.services.search_journal import Journal
from webapp.services.search_log import (
    REJECTED,
    decode_record,
    encode_record,
    search_log_for,
    start_search_log,
    stop_search_log,
    store_records,
)
from webapp.visitors import ensure_visitor_row

VISITOR = "7d4f3c1e-0000-4000-8000-00000000feed"


@pytest.fixture
def shop(app, make_product):
    make_product(external_id="T1", title="Cotton towel", brand="Acme", category_path="Home > Bath")
    make_product(external_id="T2", title="Linen towel", brand="Zenith", category_path="Home > Bath")
    make_product(external_id="M1", title="Coffee mug", brand="Acme", category_path="Kitchen")


@pytest.fixture
def search_log(app, shop):
    app.config.update(SEARCH_LOG_FLUSH_SECONDS=3600.0, SEARCH_LOG_WAIT_SECONDS=5.0)
    started = start_search_log(app)
    yield started
    stop_search_log(app)


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def as_visitor(client, visitor_id: str = VISITOR) -> None:
    with client.session_transaction() as session:
        session["vid"] = visitor_id


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

    monkeypatch.setattr(search_log_module, "store_records", away)
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


# -- ids ----------------------------------------------------------------------------------------


def test_ids_are_never_shared_between_workers_the_request_path_and_direct_inserts(client, app, shop):
    first, second = IdReserve(block=5), IdReserve(block=5)
    taken = [first.take(db.engine), second.take(db.engine), first.take(db.engine)]
    as_visitor(client)
    taken.append(client.get("/api/search?q=towel").get_json()["search_id"])  # written in the request
    ensure_visitor_row(VISITOR)
    direct = SearchQuery(text="x", normalized="x", visitor_id=VISITOR)
    db.session.add(direct)
    db.session.commit()
    taken.append(direct.id)
    taken += [second.take(db.engine) for _ in range(6)]  # past its block: a new one
    assert len(set(taken)) == len(taken)
    with db.engine.connect() as connection:
        assert issued_below(connection) > max(taken)
        assert min(reserve(connection, 3)) > max(taken)
        connection.commit()


def test_a_forked_worker_does_not_reuse_its_parents_ids(app, shop, monkeypatch):
    ids = IdReserve(block=10)
    parent = ids.take(db.engine)
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from the child after fork
    child = ids.take(db.engine)
    assert child > parent + 9


# -- a killed worker ------------------------------------------------------------------------------

CHILD = """
import json, os, signal, sys
from webapp import create_app
from webapp.services.search_log import start_search_log
url, folder, visitor = sys.argv[1:4]
app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "INSTANCE_DIR": folder,
                  "INDEX_SYNC_SECONDS": 0.0, "SIGNAL_IMPRESSION_FLUSH_SECONDS": 0.0,
                  "SIGNAL_IMPRESSION_SYNC_SECONDS": 0.0, "SEARCH_LOG_FLUSH_SECONDS": 3600.0,
                  "CELERY": {"broker_url": "memory://", "result_backend": "cache+memory://"}})
start_search_log(app)
client = app.test_client()
with client.session_transaction() as session:
    session["vid"] = visitor
found = [client.get("/api/search?q=" + q).get_json() for q in ("towel", "mug", "towel")]
print(json.dumps([[f["search_id"], f["results"][0]["product_id"], f["results"][0]["position"]] for f in found]))
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)  # no exit hook, no flush: the journal is all that is left
"""


def killed_worker(app) -> list[list]:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, app.config["INSTANCE_DIR"], VISITOR],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == -9, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_killed_workers_searches_are_stored_by_the_next_worker_to_start(app, shop):
    answered = killed_worker(app)
    assert count(SearchQuery) == 0
    app.config.update(SEARCH_LOG_FLUSH_SECONDS=3600.0)
    started = start_search_log(app)  # a replacement worker boots
    try:
        assert sorted(db.session.scalars(select(SearchQuery.id))) == sorted(a[0] for a in answered)
        assert count(Impression) == 2 + 1 + 2  # each page's impressions came with it
        assert os.listdir(started.journal.directory) == [os.path.basename(started.journal.path)]
    finally:
        stop_search_log(app)


def test_a_click_on_a_killed_workers_search_is_stored(client, app, search_log):
    answered = killed_worker(app)
    as_visitor(client)
    search_id, product, position = answered[1]
    click = {"type": "click", "product_id": product, "search_id": search_id, "position": position}
    response = client.post("/api/events", json={"events": [click]})
    assert response.status_code == 201, response.get_json()
    assert count(SearchQuery) == 3 and count(Event) == 1


def test_the_cli_stores_what_stopped_workers_left_and_leaves_running_ones(app, shop, runner):
    answered = killed_worker(app)
    running = Journal(os.path.join(app.config["INSTANCE_DIR"], "searchlog"))  # a live worker's: not the CLI's
    running.append(b"held by a running worker\n")
    result = runner.invoke(args=["search-log", "store"])
    assert result.exit_code == 0, result.output
    assert "3 searches stored; 1 journals of running workers left" in result.output
    assert sorted(db.session.scalars(select(SearchQuery.id))) == sorted(a[0] for a in answered)
    assert os.path.exists(running.path)
    assert "0 searches stored" in runner.invoke(args=["search-log", "store"]).output
    running.close(remove=True)


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
