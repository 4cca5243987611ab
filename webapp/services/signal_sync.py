"""Each web worker's mirror of the decayed signal counts, kept in step with the database.

Like the catalog sync (webapp.services.search_index), a worker reads only the rows
stamped since its previous look (minus a lookback for transactions that commit late), at
most every SIGNAL_SYNC_SECONDS, so a purchase moves trending in every worker within a
fraction of a second and a quiet shop costs two small indexed queries per interval.
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
from webapp.models import ProductSignal, QuerySignal, utcnow
from webapp.services.context_ranking import epoch
from webapp.services.signal_store_redis import RedisSignalStore, redis_store
from webapp.services.signals import half_lives

_LOOKBACK = timedelta(seconds=5)


class _SignalSyncState:
    def __init__(self) -> None:
        self.watermark: datetime | None = None
        self.last_sync = float("-inf")
        self.lock = threading.Lock()


def _state() -> _SignalSyncState:
    return current_app.extensions.setdefault("kairos.signal_sync", _SignalSyncState())


def sync_signals(board: SignalBoard, force: bool = False) -> int:
    """Copy counts changed since the last sync into the board; returns how many rows were read."""
    state = _state()
    interval = current_app.config["SIGNAL_SYNC_SECONDS"]
    if not force and time.monotonic() - state.last_sync < interval:
        return 0
    if not state.lock.acquire(blocking=False):
        return 0  # another thread of this worker is syncing: serve with what the board holds
    try:
        if board.half_lives != half_lives():
            board.half_lives = half_lives()
        started = utcnow()
        since = state.watermark - _LOOKBACK if state.watermark is not None else None
        store = redis_store()
        if store is not None:
            return _mirror_redis(store, board, state, started, since)
        count = 0
        product_rows = select(ProductSignal)
        query_rows = select(QuerySignal)
        if since is not None:
            product_rows = product_rows.where(ProductSignal.updated_at >= since)
            query_rows = query_rows.where(QuerySignal.updated_at >= since)
        for row in db.session.scalars(product_rows):
            board.put(row.product_id, row.signal, DecayedCount(row.short, row.long, row.stamp))
            count += 1
        for row in db.session.scalars(query_rows):
            board.put(row.product_id, row.signal, DecayedCount(row.short, row.long, row.stamp), query=row.query)
            count += 1
        state.watermark = started
        state.last_sync = time.monotonic()
        return count
    finally:
        state.lock.release()


def _mirror_redis(
    store: RedisSignalStore, board: SignalBoard, state: _SignalSyncState, started: datetime, since: datetime | None
) -> int:
    """The Redis store's changed counts; unreachable, the board keeps what it has and retries next interval."""
    try:
        count = store.mirror(board, epoch(since) if since is not None else None)
    except redis.RedisError as exc:
        state.last_sync = time.monotonic()
        current_app.logger.warning("signal store unreachable; ranking on the counts held: %s", exc)
        return 0
    state.watermark = started
    state.last_sync = time.monotonic()
    return count
