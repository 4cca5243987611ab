"""Decayed signal counts in a real Redis (KAIROS_SIGNAL_STORE_URL), their mirror, Redis down, and rebuild."""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import func, select

from engine.ranking.decay import DecayedCount, HalfLives
from webapp.extensions import db
from webapp.models import Event, Product, ProductSignal
from webapp.services.search_index import get_searcher
from webapp.services.signal_rebuild import rebuild_signals
from webapp.services.signal_store_redis import product_key, query_key, redis_store
from webapp.services.signals import record_actions

pytestmark = pytest.mark.integration
STORE = "redis://127.0.0.1:6379/6"
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens there: every call fails fast
LIVES = HalfLives()


@pytest.fixture
def store_client():
    client = redis.Redis.from_url(STORE, socket_connect_timeout=2, decode_responses=True)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {STORE} ({exc}); scripts/test.sh starts it")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def shop(app, make_product):
    app.config.update(
        SIGNAL_SYNC_SECONDS=0.0, EVENTS_RATE_LIMIT="10000 per minute", SEARCH_RATE_LIMIT="10000 per minute"
    )
    make_product(external_id="TOWEL", title="Cotton towel")
    make_product(external_id="MUG", title="Coffee mug")


def pid(external_id: str) -> int:
    return db.session.scalar(select(Product.id).where(Product.external_id == external_id))


def buy(client, query: str, external_id: str, times: list[float]) -> None:
    answer = client.get("/api/search", query_string={"q": query}).get_json()
    position = next(h["position"] for h in answer["results"] if h["product_id"] == external_id)
    events = [
        {"type": "purchase", "product_id": external_id, "search_id": answer["search_id"], "position": position, "ts": t}
        for t in times
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 201


def stored(client: redis.Redis, key: str) -> DecayedCount:
    values = client.hmget(key, "s", "l", "t")
    return DecayedCount(float(values[0]), float(values[1]), float(values[2]))


def test_counts_go_to_redis_with_the_same_arithmetic_and_every_worker_mirrors_them(app, client, shop, store_client):
    app.config["SIGNAL_STORE_URL"] = STORE
    now = time.time()
    times = [now - 7200, now - 60, now - 3600]  # out of order on purpose
    buy(client, "towel", "TOWEL", times)
    expected = DecayedCount()
    for at in times:
        expected = expected.add(1.0, at, LIVES)
    got = stored(store_client, product_key(pid("TOWEL"), "purchase"))
    assert got.stamp == pytest.approx(expected.stamp)
    assert got.short == pytest.approx(expected.short, rel=1e-9)
    assert got.long == pytest.approx(expected.long, rel=1e-9)
    assert stored(store_client, query_key("towel", pid("TOWEL"), "purchase")).long == pytest.approx(expected.long)
    assert db.session.scalar(select(func.count()).select_from(ProductSignal)) == 0  # none in the database
    board = get_searcher().board
    assert board.activity(pid("TOWEL"), now).purchase[1] == pytest.approx(expected.at(now, LIVES)[1], rel=1e-6)
    assert board.query_activity("towel", now)[pid("TOWEL")].purchase[0] > 0


def test_a_rolled_back_transaction_counts_nothing(app, shop, store_client):
    app.config["SIGNAL_STORE_URL"] = STORE
    record_actions([(pid("MUG"), "click", 1.0, 1_800_000_000.0, "")])
    db.session.rollback()
    db.session.commit()
    assert store_client.exists(product_key(pid("MUG"), "click")) == 0


def test_with_redis_down_searches_and_events_go_on_and_a_rebuild_restores_the_counts(app, client, shop, store_client):
    app.config["SIGNAL_STORE_URL"] = NOWHERE
    now = time.time()
    buy(client, "towel", "TOWEL", [now - 30, now - 10])
    assert client.get("/api/search?q=towel").status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Event)) == 2  # the record is whole
    assert redis_store().dropped > 0
    app.config["SIGNAL_STORE_URL"] = STORE
    app.extensions.pop("kairos.signal_store")
    counts = rebuild_signals()
    assert counts["events"] == 2 and counts["searches"] == 2
    purchases = stored(store_client, product_key(pid("TOWEL"), "purchase"))
    expected = DecayedCount().add(1.0, now - 30, LIVES).add(1.0, now - 10, LIVES)
    assert purchases.long == pytest.approx(expected.long, rel=1e-9)
    assert stored(store_client, product_key(pid("TOWEL"), "impression")).long == pytest.approx(2.0, rel=1e-3)


def test_rebuild_into_the_database_reproduces_the_live_counts(app, client, shop):
    now = time.time()
    buy(client, "towel", "TOWEL", [now - 5000, now - 20])
    live = {(r.product_id, r.signal): (r.short, r.long, r.stamp) for r in db.session.scalars(select(ProductSignal))}
    rebuild_signals()
    db.session.expire_all()
    rebuilt = {(r.product_id, r.signal): (r.short, r.long, r.stamp) for r in db.session.scalars(select(ProductSignal))}
    assert rebuilt.keys() == live.keys()
    for key, values in live.items():
        assert rebuilt[key] == pytest.approx(values, rel=1e-6)
