"""Faults in the services under the shop, injected into real processes while shoppers search
and click through real gunicorn: Redis killed and restarted, and the database refusing
connections. Each test is bounded (about 10 to 30 seconds)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import psycopg
import pytest
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import select

from tests.integration.conftest import wait_for_job
from tests.integration.fault_setup import count, count_when_stored, make_app, server_env, shop_database, write_catalog
from tests.integration.processes import RedisServer, Shoppers, between, children, serve, start_worker, stop_group
from webapp.extensions import db
from webapp.models import Event, Job, Product, SearchQuery
from webapp.services.catalog_import import import_catalog
from webapp.services.jobs import start_job

pytestmark = pytest.mark.integration
PG_SERVER = os.environ.get("KAIROS_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


# (a) Redis goes away: the web path never needs it; queued work survives and runs when it is back.


def test_redis_killed_while_shoppers_search_and_click(tmp_path, database_url):
    redis = RedisServer(tmp_path / "redis").start()  # append-only file on, as docs/operations.md asks
    app = make_app(tmp_path, database_url, broker=redis.url(0))
    env = server_env(tmp_path, database_url, redis.url(0), RATELIMIT_STORAGE_URI=redis.url(1))
    server = worker = None
    with shop_database(app, tmp_path):
        try:
            server = serve(env)
            shoppers = Shoppers(server.base).start()
            time.sleep(2)
            # Sent before the crash, with no worker up yet: the message must outlive Redis.
            queued = start_job(
                "catalog_import", "catalog.import_file", {"path": str(write_catalog(tmp_path / "b.jsonl", 5))}
            )
            redis.kill()
            down_from = time.monotonic()
            time.sleep(1)
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                start_job("catalog_import", "catalog.import_file", {"path": str(tmp_path / "b.jsonl")})
            enqueue_seconds = time.monotonic() - started
            time.sleep(max(0.0, 4 - (time.monotonic() - down_from)))
            redis.start()  # same port and folder: the append-only file brings the queue back
            down_to = time.monotonic()
            time.sleep(2)
            outcomes = shoppers.stop()

            failed = [o for o in outcomes if o.status not in (200, 201)]
            assert failed == [], failed[:5]
            during = between(outcomes, down_from, down_to)
            assert sum(o.kind == "search" for o in during) >= 10 and sum(o.kind == "click" for o in during) >= 5
            assert max(o.seconds for o in outcomes) < 2.0, "a request waited on the dead Redis"
            # Database first: every answered search was logged and every acknowledged click stored.
            assert count(Event) == sum(o.kind == "click" for o in outcomes)
            searches = sum(o.kind == "search" for o in outcomes)
            assert count_when_stored(SearchQuery, searches) == searches
            # Enqueueing while Redis is down fails within seconds, on the job row too.
            assert enqueue_seconds < 15
            refused = db.session.scalars(select(Job).where(Job.id != queued.id)).one()
            assert refused.status == "failed" and "could not enqueue" in refused.error

            worker = start_worker(env, tmp_path / "worker.log")
            assert wait_for_job(queued.id, worker, tmp_path / "worker.log").status == "succeeded"
            again = start_job("catalog_import", "catalog.import_file", {"path": str(tmp_path / "b.jsonl")})
            assert wait_for_job(again.id, worker, tmp_path / "worker.log").status == "succeeded"
            assert count(Product) == 40  # b.jsonl holds T0..T4 again: updated in place
        finally:
            for proc in (worker,):
                if proc is not None:
                    stop_group(proc)
            if server is not None:
                server.stop()
            redis.kill()


# (a2) A web worker is killed: the searches it answered but had not stored yet are not lost.


def test_a_web_worker_killed_mid_traffic_loses_no_answered_search(tmp_path, database_url):
    app = make_app(tmp_path, database_url)
    # A long flush interval, so the killed worker surely holds answered searches only in its journal.
    env = server_env(tmp_path, database_url, "memory://", GUNICORN_WORKERS="2", KAIROS_SEARCH_LOG_FLUSH_SECONDS="30")
    server = None
    with shop_database(app, tmp_path):
        try:
            server = serve(env)
            # Browsers that only search: a click makes its worker store its journal at once.
            shoppers, browsers = Shoppers(server.base).start(), Shoppers(server.base, click=False).start()
            time.sleep(3)
            victim = children(server.process.pid)[0]
            os.kill(victim, signal.SIGKILL)
            time.sleep(3)
            outcomes = shoppers.stop() + browsers.stop()
            answered = {o.search_id for o in outcomes if o.kind == "search" and o.status == 200}
            clicks = sum(o.kind == "click" and o.status == 201 for o in outcomes)
            # A click the dying worker committed but could not answer is stored without an acknowledgement.
            unanswered = sum(o.kind == "click" and o.status == 0 for o in outcomes)
            assert len(answered) >= 20 and clicks >= 10
            # Requests the dying worker was serving may get no answer; nothing else may fail.
            assert all(o.status in (0, 200, 201) for o in outcomes), [o for o in outcomes if o.status >= 300][:5]
        finally:
            if server is not None:
                server.stop()  # the survivors store the rest at exit; the replacement stored the victim's
        stored = set(db.session.scalars(select(SearchQuery.id)))
        assert answered <= stored, sorted(answered - stored)[:10]
        # Every acknowledged click, each on a stored search; beyond them only clicks left unanswered.
        assert clicks <= count(Event) <= clicks + unanswered
        assert not list((tmp_path / "searchlog").glob("*.jsonl")), "a journal was left behind"


# (b) The database restarts: requests fail fast with 503 and recover with the same server.


@pytest.fixture
def private_pg_database():
    """A PostgreSQL database of this test's own, so connections to it can be refused and cut."""
    name = f"kairos_fault_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_SERVER} ({exc})")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin, name
    finally:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_database_outage_answers_503_fast_and_recovers_without_restart(tmp_path, private_pg_database):
    admin, name = private_pg_database
    url = f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    app = make_app(tmp_path, url)
    with app.app_context():
        db.create_all()
        import_catalog(write_catalog(tmp_path / "catalog.jsonl"))
        db.session.remove()
        db.engine.dispose()
    server = serve(server_env(tmp_path, url, "memory://"))
    try:
        shoppers = Shoppers(server.base).start()
        time.sleep(2)
        # A restart as clients see it: live connections cut, new ones refused for a while.
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        down_from = time.monotonic()
        time.sleep(4)
        up_at = time.monotonic()  # read before, so no request of the outage window starts after it
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        time.sleep(4)
        outcomes = shoppers.stop()
    finally:
        server.stop()

    assert all(o.status for o in outcomes), "a request got no HTTP answer"
    assert not [o for o in outcomes if o.status >= 500 and o.status != 503], "only 503 while the database is away"
    outage = [o for o in between(outcomes, down_from + 0.5, up_at) if o.kind == "search"]
    # A connection that raced the cut may still answer; what must not happen is anything but 2xx or 503.
    assert len(outage) >= 20 and sum(o.status == 503 for o in outage) >= 0.9 * len(outage), outage[:5]
    assert all(o.status in (200, 503) for o in outage), [o for o in outage if o.status not in (200, 503)][:5]
    assert max(o.seconds for o in outcomes if o.status == 503) < 1.0, "a 503 must come fast"
    assert "briefly unavailable" in next(o.detail for o in outcomes if o.status == 503)
    recovered = between(outcomes, up_at + 2, float("inf"))
    assert recovered and all(o.status in (200, 201) for o in recovered)
    log = server.log.read_text()
    assert log.count("Booting worker") == 1, "the web worker restarted"
