"""Each web worker's mirror of the decayed signal counts, kept in step with the database.

Like the catalog (webapp.services.catalog_feed), the database's counts are read as a
commit-ordered feed: every write stamps its rows with the signal feed's next number
(webapp.services.signals), numbers commit in order, and a worker that has read the feed's
head N asks only for rows numbered after N, at most every SIGNAL_SYNC_SECONDS. A
transaction that commits late, or whose clock is behind, is still read: no wall-clock
stamp is involved. Every SIGNAL_RECONCILE_SECONDS the worker reads every row again,
repairing anything written around the feed (a hand-run SQL update).

The Redis store (webapp.services.signal_store_redis) keeps its own change times, written
by its single flusher; the worker reads it since its last look, minus a lookback.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import select

from engine.ranking.board import SignalBoard
from engine.ranking.decay import DecayedCount
from webapp.extensions import db
from webapp.models import ProductSignal, QuerySignal, SignalFeed, epoch, utcnow
from webapp.services.signal_store_redis import RedisSignalStore, redis_store
from webapp.services.signals import half_lives

_LOOKBACK = timedelta(seconds=2)
_COLUMNS = (
    ProductSignal.product_id,
    ProductSignal.signal,
    ProductSignal.short,
    ProductSignal.long,
    ProductSignal.stamp,
)


class _SignalSyncState:
    def __init__(self) -> None:
        self.watermark: datetime | None = None  # actions (clicks, carts, purchases)
        self.impression_watermark: datetime | None = None
        self.seq: int | None = None  # the feed head read before the last database read of actions
        self.impression_seq: int | None = None
        self.last_reconcile = float("-inf")
        self.last_sync = float("-inf")
        self.last_impression_sync = float("-inf")
        self.lock = threading.Lock()


def _state() -> _SignalSyncState:
    return current_app.extensions.setdefault("kairos.signal_sync", _SignalSyncState())


def sync_signals(board: SignalBoard, force: bool = False) -> int:
    """Copy counts changed since the last sync into the board; returns how many rows were read.

    Actions are read every SIGNAL_SYNC_SECONDS; impression counts, which change with every
    search but only matter over hours (CTR, exploration), every SIGNAL_IMPRESSION_SYNC_SECONDS:
    re-reading them five times a second cost more than the search itself.
    """
    state = _state()
    config = current_app.config
    if not force and time.monotonic() - state.last_sync < config["SIGNAL_SYNC_SECONDS"]:
        return 0
    if not state.lock.acquire(blocking=False):
        return 0  # another thread of this worker is syncing: serve with what the board holds
    try:
        if board.half_lives != half_lives():
            board.half_lives = half_lives()
        started = utcnow()
        impressions_due = (
            force or time.monotonic() - state.last_impression_sync >= config["SIGNAL_IMPRESSION_SYNC_SECONDS"]
        )
        since = state.watermark - _LOOKBACK if state.watermark is not None else None
        impressions_since = state.impression_watermark - _LOOKBACK if state.impression_watermark else None
        store = redis_store()
        if store is not None:
            count = _mirror_redis(store, board, since, impressions_since if impressions_due else False)
        else:
            count = _follow_feed(state, board, config["SIGNAL_RECONCILE_SECONDS"], impressions_due)
        if count is not None:
            state.watermark = started
            if impressions_due:
                state.impression_watermark = started
                state.last_impression_sync = time.monotonic()
        state.last_sync = time.monotonic()
        return count or 0
    finally:
        state.lock.release()


def _follow_feed(state: _SignalSyncState, board: SignalBoard, reconcile_seconds: float, impressions_due: bool) -> int:
    """Rows numbered after the last head read (all of them when reconciling), then the head advances.

    The head is read first: every number up to it has committed (they commit in order), so
    the rows read next hold all of them; rows numbered after it are read again next time.
    """
    reconcile = reconcile_seconds > 0 and time.monotonic() - state.last_reconcile >= reconcile_seconds
    head = db.session.scalar(select(SignalFeed.head).where(SignalFeed.id == 1)) or 0
    since = None if reconcile else state.seq
    impressions_since = None if reconcile else state.impression_seq
    count = _mirror_database(board, since, impressions_since if impressions_due or reconcile else False)
    state.seq = head
    if impressions_due or reconcile:
        state.impression_seq = head
    if reconcile:
        state.last_reconcile = time.monotonic()
    return count


def _mirror_database(board: SignalBoard, since: int | None, impressions_since: int | None | bool) -> int:
    """Rows numbered after the given feed heads (impressions_since False: not this time), as plain tuples."""
    actions = select(*_COLUMNS).where(ProductSignal.signal != "impression")
    queries = select(
        QuerySignal.product_id,
        QuerySignal.signal,
        QuerySignal.short,
        QuerySignal.long,
        QuerySignal.stamp,
        QuerySignal.query,
    )
    if since is not None:
        actions = actions.where(ProductSignal.change_seq > since)
        queries = queries.where(QuerySignal.change_seq > since)
    statements = [actions]
    if impressions_since is not False:
        impressions = select(*_COLUMNS).where(ProductSignal.signal == "impression")
        if impressions_since is not None:
            impressions = impressions.where(ProductSignal.change_seq > impressions_since)
        statements.append(impressions)
    count = 0
    for statement in statements:
        for product_id, signal, short, long, stamp in db.session.execute(statement):
            board.put(product_id, signal, DecayedCount(short, long, stamp))
            count += 1
    for product_id, signal, short, long, stamp, query in db.session.execute(queries):
        board.put(product_id, signal, DecayedCount(short, long, stamp), query=query)
        count += 1
    return count


def _mirror_redis(
    store: RedisSignalStore, board: SignalBoard, since: datetime | None, impressions_since: datetime | None | bool
) -> int | None:
    """The Redis store's changed counts; unreachable (None), the board keeps what it has and retries."""
    try:
        return store.mirror(
            board,
            epoch(since) if since is not None else None,
            False if impressions_since is False else (epoch(impressions_since) if impressions_since else None),
        )
    except redis.RedisError as exc:
        current_app.logger.warning("signal store unreachable; ranking on the counts held: %s", exc)
        return None
