"""Frequently-bought-together counts in the database: written with the events, read per list.

A cart or purchase event pairs its product with the visitor's other carts and purchases of
the same session window (engine.recommending.co_occurrence); the increments go through the
same decaying upsert as the other signals (webapp.services.signals), in the event's own
transaction, so a purchase changes both products' "bought together" lists as it commits.

The counts stay in the database when SIGNAL_STORE_URL names a Redis store: a list reads
only its anchors' rows (an indexed read), not a per-worker mirror.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from engine.recommending.co_occurrence import (
    BASKET_SIGNALS,
    SESSION_WINDOW,
    CoCounts,
    session_increments,
    window_increments,
)
from webapp.extensions import db
from webapp.models import Event, PairSignal, epoch, utcnow
from webapp.services.feedback_trust import trusted_events
from webapp.services.signal_store_redis import KEEP_HALF_LIVES
from webapp.services.signals import _totals, _upsert, half_lives

TOTAL_TTL = 10.0  # seconds a worker keeps N, the sum of every basket count (one aggregate over the diagonal)
_EVENT_TIME = func.coalesce(Event.occurred_at, Event.created_at)
_total_lock = threading.Lock()


def _total_cache() -> dict[str, tuple[float, float]]:
    """This app's cached N (per app: tests and benches run several apps in one process)."""
    return current_app.extensions.setdefault("kairos.pair_total", {})


def _write(increments: Iterable[tuple[int, int, float]]) -> None:
    _upsert(PairSignal, ("product_id", "partner_id"), _totals(((a, b), 1.0, at) for a, b, at in increments))


def record_baskets(visitor_id: str, actions: Sequence[tuple[int, str, float]]) -> None:
    """Count the pairs that these (product id, event type, at) of one visitor make, in the calling transaction.

    Call it before the new events are added to the session: the visitor's stored basket events
    are read as the session window, and the new ones join it here in time order.
    """
    basket = sorted(((pid, at) for pid, kind, at in actions if kind in BASKET_SIGNALS), key=lambda item: item[1])
    if not basket or not visitor_id:
        return
    # created_at bounds the read (it is indexed); an event's own time may be earlier (a client "ts").
    since = datetime.fromtimestamp(basket[0][1] - SESSION_WINDOW, UTC).replace(tzinfo=None)
    since = min(since, utcnow() - timedelta(seconds=SESSION_WINDOW))
    with db.session.no_autoflush:
        rows = db.session.execute(
            select(Event.product_id, _EVENT_TIME).where(
                Event.visitor_id == visitor_id, Event.type.in_(BASKET_SIGNALS), Event.created_at >= since
            )
        ).all()
    earlier = [(pid, epoch(at)) for pid, at in rows]
    increments = []
    for pid, at in basket:
        increments += window_increments(earlier, pid, at)
        earlier.append((pid, at))
    _write(increments)


def _decayed(value: float, stamp: float, now: float, half_life: float) -> float:
    return value * 2.0 ** (-max(now - stamp, 0.0) / half_life)


def _total(now: float, half_life: float) -> float:
    """N: every product's basket count decayed to now, cached a few seconds per worker."""
    with _total_lock:
        cached = _total_cache().get("total")
        if cached is not None and time.monotonic() - cached[1] < TOTAL_TTL:
            return cached[0]
    k = math.log(2.0) / half_life
    rows = db.session.execute(
        select(PairSignal.long, PairSignal.stamp).where(PairSignal.product_id == PairSignal.partner_id)
    ).all()
    total = sum(value * math.exp(-max(now - stamp, 0.0) * k) for value, stamp in rows)
    with _total_lock:
        _total_cache()["total"] = (total, time.monotonic())
    return total


def co_counts(anchors: Sequence[int], now: float) -> CoCounts:
    """The anchors' partners and the basket counts lift needs, decayed to `now` at the long half-life."""
    if not anchors:
        return CoCounts({}, {}, 0.0)
    life = half_lives().long
    rows = db.session.execute(
        select(PairSignal.product_id, PairSignal.partner_id, PairSignal.long, PairSignal.stamp).where(
            PairSignal.product_id.in_(list(anchors))
        )
    ).all()
    pairs: dict[int, dict[int, float]] = defaultdict(dict)
    baskets: dict[int, float] = {}
    for a, b, value, stamp in rows:
        if a == b:
            baskets[a] = _decayed(value, stamp, now, life)
        else:
            pairs[a][b] = _decayed(value, stamp, now, life)
    partners = {b for found in pairs.values() for b in found} - set(baskets)
    if partners:
        for pid, value, stamp in db.session.execute(
            select(PairSignal.product_id, PairSignal.long, PairSignal.stamp).where(
                PairSignal.product_id.in_(list(partners)), PairSignal.partner_id == PairSignal.product_id
            )
        ):
            baskets[pid] = _decayed(value, stamp, now, life)
    return CoCounts(pairs, baskets, _total(now, life) if pairs else 0.0)


def rebuild_pairs() -> int:
    """Clear the pair counts and replay the window's cart and purchase events, visitor by visitor; commits."""
    since = utcnow() - timedelta(seconds=KEEP_HALF_LIVES * half_lives().long)
    rows = db.session.execute(
        select(Event.visitor_id, Event.product_id, _EVENT_TIME)
        .where(
            Event.type.in_(BASKET_SIGNALS), Event.created_at >= since, Event.visitor_id.is_not(None), trusted_events()
        )
        .order_by(Event.visitor_id, _EVENT_TIME, Event.id)
    ).all()
    db.session.execute(delete(PairSignal))
    sessions: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for visitor, pid, at in rows:
        sessions[visitor].append((pid, epoch(at)))
    increments = [inc for events in sessions.values() for inc in session_increments(events)]
    increments.sort(key=lambda inc: inc[2])  # in time order, as the live writes came
    for start in range(0, len(increments), 2000):
        _write(increments[start : start + 2000])
    db.session.commit()
    with _total_lock:
        _total_cache().clear()
    return len(rows)
