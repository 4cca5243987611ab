"""Which feedback the system may believe: events tied to what the visitor was shown, at a
plausible rate.

An event with a search id is checked against that search's impressions (webapp.services.events).
One without must name a product its visitor was shown: a product page the server rendered for
them (a ProductView row, written here) or a product in one of their searches' results; any
other is refused. Each visitor's purchases and add-to-carts are counted on their row per rate
window (clearing their history, which unlinks their events, does not reset it); a visitor whose
count passes the configured bound is flagged: their window's events and every later one are stored with
`flagged` set, and nothing that learns or judges (training exports, the context ranker's fit,
signals and their rebuild, experiment metrics) reads a flagged event (`trusted_events`).
Counts already added to the live signals before the bound was passed stay there (at most the
bound's worth); the next signal rebuild drops them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from webapp.extensions import db
from webapp.models import Event, Impression, ProductView, SearchQuery, Visitor, utcnow
from webapp.visitors import ensure_visitor_row


def trusted_events():
    """The SQL condition every reader that learns or judges from events adds."""
    return Event.flagged.is_(False)


def record_product_view(visitor_id: str, product_id: int) -> None:
    """Remember that this visitor was shown this product's page (one use case: commits)."""
    try:
        ensure_visitor_row(visitor_id)
        dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
        now = utcnow()
        stmt = dialect.insert(ProductView.__table__).values(visitor_id=visitor_id, product_id=product_id, viewed_at=now)
        db.session.execute(
            stmt.on_conflict_do_update(index_elements=["visitor_id", "product_id"], set_={"viewed_at": now})
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def shown_products(visitor_id: str, product_ids: set[int]) -> set[int]:
    """The products among `product_ids` this visitor was shown: a page view or a search result."""
    if not product_ids:
        return set()
    viewed = select(ProductView.product_id).where(
        ProductView.visitor_id == visitor_id, ProductView.product_id.in_(product_ids)
    )
    listed = (
        select(Impression.product_id)
        .join(SearchQuery, SearchQuery.id == Impression.search_id)
        .where(SearchQuery.visitor_id == visitor_id, Impression.product_id.in_(product_ids))
    )
    return set(db.session.scalars(viewed.union(listed)))


def rate_bounds() -> dict[str, int]:
    """The most events of each bounded type a visitor may send within the window before being flagged."""
    config = current_app.config
    return {"purchase": config["FEEDBACK_MAX_PURCHASES"], "add_to_cart": config["FEEDBACK_MAX_ADD_TO_CARTS"]}


_COUNTERS = {"purchase": Visitor.window_purchases, "add_to_cart": Visitor.window_add_to_carts}


def _count_in_window(visitor_id: str, batch: Counter, now: datetime) -> tuple[datetime, dict[str, int]]:
    """Add the batch to the visitor's counts in their current window (a new one once it has
    passed), in one atomic UPDATE (concurrent batches never lose a count); the window's start
    and the counts after it."""
    since = now - timedelta(seconds=current_app.config["FEEDBACK_RATE_WINDOW_SECONDS"])
    expired = or_(Visitor.rate_window_at.is_(None), Visitor.rate_window_at < since)
    values = {
        column.key: case((expired, batch[kind]), else_=column + batch[kind]) for kind, column in _COUNTERS.items()
    }
    row = db.session.execute(
        update(Visitor)
        .where(Visitor.id == visitor_id)
        .values(rate_window_at=case((expired, now), else_=Visitor.rate_window_at), **values)
        .returning(Visitor.rate_window_at, *_COUNTERS.values())
        .execution_options(synchronize_session=False)
    ).one()
    return row[0], dict(zip(_COUNTERS, row[1:], strict=True))


def flag_if_implausible(visitor_id: str, types: Iterable[str], now: datetime) -> bool:
    """Whether this batch's events must be stored flagged; flags the visitor (and their window's
    events) when the batch takes a bounded type past its bound. Runs in the caller's transaction,
    after the visitor's row exists."""
    flagged_at = db.session.scalar(select(Visitor.feedback_flagged_at).where(Visitor.id == visitor_id))
    if flagged_at is not None:
        return True
    batch = Counter(t for t in types if t in _COUNTERS)
    if not batch:
        return False
    since, counts = _count_in_window(visitor_id, batch, now)
    over = [(kind, counts[kind]) for kind in batch if counts[kind] > rate_bounds()[kind]]
    if not over:
        return False
    reason = "; ".join(f"{count} {kind} events within {since:%H:%M}-{now:%H:%M} UTC" for kind, count in over)
    db.session.execute(
        update(Visitor).where(Visitor.id == visitor_id).values(feedback_flagged_at=now, feedback_flag_reason=reason)
    )
    db.session.execute(
        update(Event).where(Event.visitor_id == visitor_id, Event.created_at >= since).values(flagged=True)
    )
    current_app.logger.warning("visitor %s flagged: %s", visitor_id, reason)
    return True
