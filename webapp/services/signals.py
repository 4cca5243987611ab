"""Recording decayed signal counts in the database as impressions and events arrive.

Each count is one row per (product, signal) (and per (query, product, signal)) holding its
value at the short and long half-life as of `stamp`. Adding weight w at time t is one
upsert whose decay arithmetic runs inside the database, so concurrent web workers never
lose an update and no row is read first:

    t >= stamp:  value * 2^(-(t - stamp) / h) + w,  stamp = t
    t <  stamp:  value + w * 2^(-(stamp - t) / h)   (a late event, decayed to the stamp)

It runs in the caller's transaction: the counts commit with the events they count, and
with the signal feed number (webapp.models.SignalFeed) stamped on the rows they change,
which web workers mirror as "rows numbered after N" (webapp.services.signal_sync).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from flask import current_app
from sqlalchemy import case, func, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.ranking.decay import HalfLives, decay
from webapp.extensions import db
from webapp.models import ProductSignal, QuerySignal, SignalFeed, utcnow
from webapp.services.signal_store_redis import product_key, query_key, queue_increments, redis_store

Key = tuple  # (product_id, signal) or (query, product_id, signal)


def half_lives() -> HalfLives:
    config = current_app.config
    return HalfLives(short=config["SIGNAL_SHORT_HALF_LIFE"], long=config["SIGNAL_LONG_HALF_LIFE"])


# exp() below this is 0 to double precision anyway; PostgreSQL raises "underflow" instead of
# answering 0, which refused every event for a product whose count was quiet for about 45 days.
_MIN_EXPONENT = -700.0


def _shrink(elapsed, k: float):
    """SQL for 2^(-elapsed / h) with elapsed >= 0, as exp(-elapsed * ln 2 / h), floored before exp()."""
    exponent = -elapsed * k
    return func.exp(case((exponent < _MIN_EXPONENT, _MIN_EXPONENT), else_=exponent))


def _decayed(column, stamp_column, new_stamp, weight, half_life: float):
    """SQL for the merged value (see the module docstring)."""
    k = math.log(2.0) / half_life
    return case(
        (new_stamp >= stamp_column, column * _shrink(new_stamp - stamp_column, k) + weight),
        else_=column + weight * _shrink(stamp_column - new_stamp, k),
    )


def next_feed_number(insert) -> int:
    """The signal feed's next number, taken in the calling transaction (its lock is held to the commit)."""
    bump = update(SignalFeed).where(SignalFeed.id == 1).values(head=SignalFeed.head + 1).returning(SignalFeed.head)
    head = db.session.execute(bump).scalar()
    if head is None:  # the first write of a new database: make the counter row, then take its first number
        db.session.execute(insert(SignalFeed).values(id=1, head=0).on_conflict_do_nothing(index_elements=["id"]))
        head = db.session.execute(bump).scalar()
    return int(head)


def _upsert(model, key_columns: tuple[str, ...], totals: dict[Key, tuple[float, float, float]]) -> None:
    """Add (short weight, long weight, at) per key into the model's table with one executemany."""
    if not totals:
        return
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    lives = half_lives()
    now = utcnow()
    table = model.__table__
    # Tables the workers mirror carry the feed number (webapp.services.signal_sync); others
    # (the pair counts, read from the database per list) take no number and no feed lock.
    fed = {"change_seq": next_feed_number(insert)} if "change_seq" in table.c else {}
    rows = [
        {
            **dict(zip(key_columns, key, strict=True)),
            **{"short": short, "long": long, "stamp": at, "updated_at": now, **fed},
        }
        for key, (short, long, at) in totals.items()
    ]
    stmt = insert(model)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key_columns),
        set_={
            "short": _decayed(table.c.short, table.c.stamp, stmt.excluded.stamp, stmt.excluded.short, lives.short),
            "long": _decayed(table.c.long, table.c.stamp, stmt.excluded.stamp, stmt.excluded.long, lives.long),
            "stamp": case((stmt.excluded.stamp > table.c.stamp, stmt.excluded.stamp), else_=table.c.stamp),
            "updated_at": stmt.excluded.updated_at,
            **({"change_seq": stmt.excluded.change_seq} if fed else {}),
        },
    )
    # Keys are sorted so concurrent writers lock rows in the same order (no deadlocks on PostgreSQL).
    db.session.execute(stmt, sorted(rows, key=lambda r: tuple(str(r[c]) for c in key_columns)))


def _totals(items: Iterable[tuple[Key, float, float]]) -> dict[Key, tuple[float, float, float]]:
    """Sum repeated keys of one batch: (short, long, latest time), each weight decayed to the latest time.

    Each horizon decays at its own half-life: a batch of events with client times ("ts") may
    span days, and one rate for both would undercount the long horizon.
    """
    grouped: dict[Key, list[tuple[float, float]]] = defaultdict(list)
    for key, weight, at in items:
        grouped[key].append((weight, at))
    lives = half_lives()
    totals = {}
    for key, entries in grouped.items():
        latest = max(at for _, at in entries)
        totals[key] = (
            sum(decay(w, latest - at, lives.short) for w, at in entries),
            sum(decay(w, latest - at, lives.long) for w, at in entries),
            latest,
        )
    return totals


def record_impressions(shown: Iterable[tuple[int, float]]) -> None:
    """Count one impression per (product id, time) shown, in the calling transaction.

    Searches do not call this one by one: webapp.services.impression_flush sums a worker's
    impressions and writes them here from a background thread.
    """
    shown = list(shown)
    if not shown:
        return
    if redis_store() is not None:
        queue_increments(db.session, ((product_key(pid, "impression"), 1.0, t) for pid, t in shown))
        return
    _upsert(ProductSignal, ("product_id", "signal"), _totals(((pid, "impression"), 1.0, t) for pid, t in shown))


def record_actions(actions: Iterable[tuple[int, str, float, float, str]]) -> None:
    """Count (product id, signal, weight, at, normalized query or "") actions, per product and per query."""
    actions = list(actions)
    if redis_store() is not None:
        queue_increments(db.session, ((product_key(p, s), w, at) for p, s, w, at, _ in actions))
        queue_increments(db.session, ((query_key(q, p, s), w, at) for p, s, w, at, q in actions if q))
        return
    _upsert(ProductSignal, ("product_id", "signal"), _totals(((p, s), w, at) for p, s, w, at, _ in actions))
    _upsert(
        QuerySignal,
        ("query", "product_id", "signal"),
        _totals(((q, p, s), w, at) for p, s, w, at, q in actions if q),
    )
