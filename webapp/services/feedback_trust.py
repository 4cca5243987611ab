"""Which feedback the system may believe: events tied to what the visitor was shown, at a
plausible rate.

An event with a search id is checked against that search's impressions (webapp.services.events).
One without must name a product its visitor was shown: a product page the server rendered for
them (a ProductView row, written here) or a product in one of their searches' results; any
other is refused. A visitor whose purchases or add-to-carts within the window pass the
configured bound is flagged: their window's events and every later one are stored with
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
from sqlalchemy import func, select, update
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


def flag_if_implausible(visitor_id: str, types: Iterable[str], now: datetime) -> bool:
    """Whether this batch's events must be stored flagged; flags the visitor (and their window's
    events) when the batch takes a bounded type past its bound. Runs in the caller's transaction."""
    flagged_at = db.session.scalar(select(Visitor.feedback_flagged_at).where(Visitor.id == visitor_id))
    if flagged_at is not None:
        return True
    batch = Counter(t for t in types if t in rate_bounds())
    if not batch:
        return False
    since = now - timedelta(seconds=current_app.config["FEEDBACK_RATE_WINDOW_SECONDS"])
    earlier = dict(
        db.session.execute(
            select(Event.type, func.count())
            .where(Event.visitor_id == visitor_id, Event.type.in_(batch), Event.created_at >= since)
            .group_by(Event.type)
        ).all()
    )
    over = [(t, earlier.get(t, 0) + n) for t, n in batch.items() if earlier.get(t, 0) + n > rate_bounds()[t]]
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
