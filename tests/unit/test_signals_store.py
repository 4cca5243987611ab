"""Decayed signal counts in the database (webapp.services.signals), through the real API, and their
mirror in the worker's board (webapp.services.signal_sync). Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.ranking.context import CONTEXT_FEATURES
from engine.ranking.decay import DecayedCount, HalfLives
from webapp.extensions import db
from webapp.models import Event, Impression, Product, ProductSignal, QuerySignal, SearchQuery, epoch, utcnow
from webapp.services.search_index import get_searcher
from webapp.services.signal_sync import sync_signals

HOUR = 3600.0
LIVES = HalfLives(short=HOUR, long=86400.0)


@pytest.fixture
def shop(app, make_product):
    """Three towels and a mug; signals mirrored on every search."""
    app.config.update(SIGNAL_SYNC_SECONDS=0.0, EVENTS_RATE_LIMIT="10000 per minute")
    for n, price in enumerate((12.0, 20.0, 8.0), start=1):
        make_product(external_id=f"TOWEL{n}", title=f"Cotton towel {n}", price=price)
    make_product(external_id="MUG", title="Coffee mug")


def pid(external_id: str) -> int:
    return db.session.scalar(select(Product.id).where(Product.external_id == external_id))


def row(model, product_id: int, signal: str, **key) -> object | None:
    db.session.expire_all()
    stmt = select(model).where(model.product_id == product_id, model.signal == signal)
    for name, value in key.items():
        stmt = stmt.where(getattr(model, name) == value)
    return db.session.scalar(stmt)


def folded(times: list[float], weight: float = 1.0) -> DecayedCount:
    count = DecayedCount()
    for at in times:
        count = count.add(weight, at, LIVES)
    return count


def assert_matches(stored, expected: DecayedCount) -> None:
    assert stored is not None
    assert stored.stamp == pytest.approx(expected.stamp, abs=1e-3)
    # Both read at the same moment: the stored values equal the engine's for the same events.
    now = expected.stamp
    assert DecayedCount(stored.short, stored.long, stored.stamp).at(now, LIVES) == (
        pytest.approx(expected.short, rel=1e-6),
        pytest.approx(expected.long, rel=1e-6),
    )


def search(client, text: str = "towel") -> dict:
    response = client.get("/api/search", query_string={"q": text})
    assert response.status_code == 200
    return response.get_json()


def post_events(client, events: list[dict]):
    return client.post("/api/events", json={"events": events})


def event_times(product_id: int, kind: str) -> list[float]:
    at = func.coalesce(Event.occurred_at, Event.created_at)
    rows = db.session.scalars(select(at).where(Event.product_id == product_id, Event.type == kind).order_by(Event.id))
    return [epoch(moment) for moment in rows]


def test_impressions_count_per_shown_product(shop, client):
    first, second = search(client), search(client)
    stamps = [epoch(q.created_at) for q in db.session.scalars(select(SearchQuery).order_by(SearchQuery.id))]
    for result in first["results"]:
        assert_matches(row(ProductSignal, pid(result["product_id"]), "impression"), folded(stamps))
    assert {r["product_id"] for r in second["results"]} == {"TOWEL1", "TOWEL2", "TOWEL3"}
    assert row(ProductSignal, pid("MUG"), "impression") is None


def test_events_with_and_without_ts_match_the_engine(shop, client):
    found = search(client)
    sid = found["search_id"]
    position = {r["product_id"]: r["position"] for r in found["results"]}
    now = epoch(utcnow())
    batch = [
        {"type": "purchase", "product_id": "TOWEL2", "search_id": sid, "position": position["TOWEL2"]},
        {"type": "purchase", "product_id": "TOWEL2", "ts": now - 2 * HOUR},  # one batch spanning two hours
        {"type": "click", "product_id": "TOWEL1", "ts": (utcnow() - timedelta(minutes=30)).isoformat()},
    ]
    assert post_events(client, batch).status_code == 201
    # A second batch arrives with times before the stored stamp (a late, out-of-order delivery).
    late = [{"type": "purchase", "product_id": "TOWEL2", "ts": now - 5 * HOUR}]
    assert post_events(client, late).status_code == 201
    towel2 = pid("TOWEL2")
    assert_matches(row(ProductSignal, towel2, "purchase"), folded(event_times(towel2, "purchase")))
    assert_matches(row(ProductSignal, pid("TOWEL1"), "click"), folded(event_times(pid("TOWEL1"), "click")))
    # Only the purchase that named its search counts for that query.
    (with_search,) = [t for t, e in zip(event_times(towel2, "purchase"), _events(towel2), strict=True) if e.search_id]
    assert_matches(row(QuerySignal, towel2, "purchase", query="towel"), folded([with_search]))
    assert row(QuerySignal, pid("TOWEL1"), "click") is None


def _events(product_id: int) -> list[Event]:
    return db.session.scalars(select(Event).where(Event.product_id == product_id).order_by(Event.id)).all()


def test_concurrent_batches_with_out_of_order_times_lose_nothing(app, shop):
    now = epoch(utcnow())
    offsets = [[-k * 600.0 for k in range(8)], [-k * 600.0 - 300 for k in reversed(range(8))]]
    errors: list[BaseException] = []

    def send(times: list[float]) -> None:
        try:
            client = app.test_client()
            client.get("/product/TOWEL3")
            for at in times:
                response = post_events(client, [{"type": "add_to_cart", "product_id": "TOWEL3", "ts": now + at}])
                assert response.status_code == 201, response.get_json()
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(times,)) for times in offsets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    towel3 = pid("TOWEL3")
    times = event_times(towel3, "add_to_cart")
    assert len(times) == 16
    assert_matches(row(ProductSignal, towel3, "add_to_cart"), folded(sorted(times)))


@pytest.mark.parametrize(
    ("ts", "reason"),
    [(3600 * 24, "in the future"), (-8 * 86400, "older than 7 days"), ("2001-01-01T00:00:00", "older than")],
)
def test_refused_timestamps_store_nothing_and_say_why(shop, client, ts, reason):
    found = search(client)
    before = {m: db.session.scalar(select(func.count()).select_from(m)) for m in (Event, ProductSignal, QuerySignal)}
    now = epoch(utcnow())
    stamp = now + ts if isinstance(ts, int | float) else ts
    batch = [
        {"type": "purchase", "product_id": "TOWEL1", "search_id": found["search_id"]},
        {"type": "click", "product_id": "TOWEL2", "ts": stamp},
    ]
    response = post_events(client, batch)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"].startswith("invalid events") and [d["index"] for d in body["details"]] == [1]
    assert reason in body["details"][0]["error"]
    db.session.expire_all()
    after = {m: db.session.scalar(select(func.count()).select_from(m)) for m in (Event, ProductSignal, QuerySignal)}
    assert after == before
    assert row(ProductSignal, pid("TOWEL1"), "purchase") is None


def test_small_clock_skew_is_clamped_to_arrival(shop, client):
    now = epoch(utcnow())
    client.get("/product/MUG")
    assert post_events(client, [{"type": "click", "product_id": "MUG", "ts": now + 120}]).status_code == 201
    (event,) = _events(pid("MUG"))
    assert epoch(event.occurred_at) == pytest.approx(epoch(event.created_at), abs=1e-3)
    assert row(ProductSignal, pid("MUG"), "click").stamp <= epoch(event.created_at) + 1e-3


def test_a_count_quiet_for_months_takes_new_events(shop, client):
    # exp() of a very negative number underflows: PostgreSQL raises rather than return 0.
    mug = pid("MUG")
    long_ago = epoch(utcnow()) - 400 * 86400
    db.session.add(ProductSignal(product_id=mug, signal="click", short=3.0, long=3.0, stamp=long_ago))
    db.session.commit()
    client.get("/product/MUG")
    assert post_events(client, [{"type": "click", "product_id": "MUG"}]).status_code == 201
    stored = row(ProductSignal, mug, "click")
    assert stored.short == pytest.approx(1.0) and stored.long == pytest.approx(1.0, abs=1e-3)


def test_the_worker_board_mirrors_the_stored_counts(shop, client):
    found = search(client)
    purchase = {"type": "purchase", "product_id": "TOWEL1", "search_id": found["search_id"]}
    client.get("/product/MUG")
    board = get_searcher().board
    assert post_events(client, [purchase, {"type": "click", "product_id": "MUG"}]).status_code == 201
    assert sync_signals(board, force=True) > 0
    now = epoch(utcnow())
    for product_id, signal in ((pid("TOWEL1"), "purchase"), (pid("MUG"), "click"), (pid("TOWEL2"), "impression")):
        stored = row(ProductSignal, product_id, signal)
        expected = DecayedCount(stored.short, stored.long, stored.stamp).at(now, LIVES)
        assert getattr(board.activity(product_id, now), signal) == pytest.approx(expected)
    assert board.query_activity("towel", now)[pid("TOWEL1")].purchase[0] > 0.99
    # A later event reaches the board through the search path's sync (SIGNAL_SYNC_SECONDS is 0 here).
    assert post_events(client, [{"type": "add_to_cart", "product_id": "MUG"}]).status_code == 201
    search(client, "mug")
    assert get_searcher().board.activity(pid("MUG"), epoch(utcnow())).add_to_cart[0] > 0.99


def test_logged_impressions_carry_the_context_features_of_the_shown_page(shop, client):
    found = search(client)
    impressions = db.session.scalars(
        select(Impression).where(Impression.search_id == found["search_id"]).order_by(Impression.position)
    ).all()
    assert len(impressions) == len(found["results"]) == 3
    for impression in impressions:
        assert set(impression.features) == {*CONTEXT_FEATURES, "explore"}
    relevance = [i.features["relevance"] for i in impressions]
    assert relevance == sorted(relevance, reverse=True) and relevance[0] == pytest.approx(10 / 11, abs=1e-4)
    assert all(i.features["freshness"] > 0.99 for i in impressions)  # made just now


def test_a_count_committed_with_a_stamp_older_than_any_lookback_is_still_mirrored(shop, client):
    """The mirror follows the signal feed's numbers, not updated_at: a transaction whose stamp is an
    hour behind the worker's last look (a late commit, a host whose clock is behind) is still read."""
    board = get_searcher().board
    sync_signals(board, force=True)
    client.get("/product/MUG")
    assert post_events(client, [{"type": "click", "product_id": "MUG"}]).status_code == 201
    db.session.execute(
        ProductSignal.__table__.update()
        .where(ProductSignal.product_id == pid("MUG"))
        .values(updated_at=utcnow() - timedelta(hours=1))
    )
    db.session.commit()
    assert sync_signals(board, force=True) >= 1
    assert board.activity(pid("MUG"), epoch(utcnow())).click[0] > 0.99
    # Read once: the next look asks for numbers after the feed's head and finds none.
    assert sync_signals(board, force=True) == 0


def test_the_periodic_reconciliation_repairs_a_count_written_around_the_feed(shop, client, app):
    app.config.update(SIGNAL_RECONCILE_SECONDS=3600.0)
    client.get("/product/MUG")
    assert post_events(client, [{"type": "click", "product_id": "MUG"}]).status_code == 201
    board = get_searcher().board
    sync_signals(board, force=True)
    now = epoch(utcnow())
    # A hand-run SQL update: the counts change, no feed number is taken.
    db.session.execute(
        ProductSignal.__table__.update()
        .where(ProductSignal.product_id == pid("MUG"), ProductSignal.signal == "click")
        .values(short=5.0, long=5.0, stamp=now)
    )
    db.session.commit()
    assert sync_signals(board, force=True) == 0
    assert board.activity(pid("MUG"), now).click[0] < 1.01
    app.config.update(SIGNAL_RECONCILE_SECONDS=1e-9)  # due now: the next look reads every row
    assert sync_signals(board, force=True) >= 1
    assert board.activity(pid("MUG"), now).click[0] == pytest.approx(5.0, rel=1e-3)
