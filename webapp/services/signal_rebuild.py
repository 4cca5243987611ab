"""Rebuild the decayed signal counts from the record: the impressions and events in the database.

Counts are derived data. After Redis was unreachable (its increments were dropped), after
moving the store between Redis and the database, or after changing a half-life, this
replays the window that still matters (ten long half-lives) through the same write path
the live traffic uses, in time order, chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, func, select

from webapp.extensions import db
from webapp.models import Event, Impression, ProductSignal, QuerySignal, SearchQuery, epoch, utcnow
from webapp.services.feedback_trust import trusted_events
from webapp.services.signal_store_redis import KEEP_HALF_LIVES, PREFIX, redis_store
from webapp.services.signals import half_lives, record_actions, record_impressions

CHUNK = 2000


def _clear_store() -> None:
    store = redis_store()
    if store is None:
        db.session.execute(delete(QuerySignal))
        db.session.execute(delete(ProductSignal))
        db.session.commit()
        return
    keys = list(store.client.scan_iter(match=f"{PREFIX}*", count=1000))
    for start in range(0, len(keys), 1000):
        store.client.delete(*keys[start : start + 1000])


def rebuild_signals(progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Clear the store and replay the window's impressions and events; returns the counts replayed."""
    since = utcnow() - timedelta(seconds=KEEP_HALF_LIVES * half_lives().long)
    searches = select(SearchQuery.id, SearchQuery.created_at).where(SearchQuery.created_at >= since)
    at = func.coalesce(Event.occurred_at, Event.created_at)
    events = (
        select(Event.id, Event.product_id, Event.type, at.label("at"), SearchQuery.normalized)
        .outerjoin(SearchQuery, SearchQuery.id == Event.search_id)
        .where(Event.created_at >= since, trusted_events())
        .order_by(at, Event.id)
    )
    total_searches = db.session.scalar(select(func.count()).select_from(searches.subquery())) or 0
    total_events = db.session.scalar(select(func.count()).select_from(events.subquery())) or 0
    _clear_store()
    done, counts = 0, {"searches": 0, "impressions": 0, "events": 0}
    last_id = 0
    while True:
        chunk = db.session.execute(searches.where(SearchQuery.id > last_id).order_by(SearchQuery.id).limit(CHUNK)).all()
        if not chunk:
            break
        shown: dict[int, list[int]] = {}
        for row in db.session.execute(
            select(Impression.search_id, Impression.product_id).where(Impression.search_id.in_([r.id for r in chunk]))
        ):
            shown.setdefault(row.search_id, []).append(row.product_id)
        for search in chunk:
            at = epoch(search.created_at)
            record_impressions((pid, at) for pid in shown.get(search.id, []))
            counts["impressions"] += len(shown.get(search.id, []))
        db.session.commit()
        last_id = chunk[-1].id
        counts["searches"] += len(chunk)
        done += len(chunk)
        if progress:
            progress(done, total_searches + total_events)
    offset = 0
    while True:
        chunk = db.session.execute(events.offset(offset).limit(CHUNK)).all()
        if not chunk:
            break
        record_actions((r.product_id, r.type, 1.0, epoch(r.at), r.normalized or "") for r in chunk)
        db.session.commit()
        offset += len(chunk)
        counts["events"] += len(chunk)
        done += len(chunk)
        if progress:
            progress(done, total_searches + total_events)
    return counts
