"""Read-only export of recent feedback (searches, impressions, events, catalog) as plain records.

The training code in engine/training/dataset.py knows nothing of the database; this is
the one place that turns rows into its records. Nothing here writes or commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from engine.serving.searcher import card_text
from engine.training.dataset import EventRecord, FeedbackLog, ImpressionRecord, ProductRecord, SearchRecord
from webapp.extensions import db, in_chunks
from webapp.models import Event, Impression, Job, Product, SearchQuery
from webapp.services.feedback_trust import trusted_events
from webapp.services.search_index import product_card


def export_feedback(since: datetime, until: datetime, max_position: int = 24) -> FeedbackLog:
    """Searches made in [since, until), their impressions up to max_position, the window's trusted events,
    and the active catalog. Events may name searches outside the window or deleted products:
    they are passed on as they are, for the dataset builder to skip and count."""
    searches = [
        SearchRecord(search_id=row.id, query=row.text, created_at=row.created_at)
        for row in db.session.execute(
            select(SearchQuery.id, SearchQuery.text, SearchQuery.created_at)
            .where(SearchQuery.created_at >= since, SearchQuery.created_at < until, SearchQuery.page == 1)
            .order_by(SearchQuery.id)
        )
    ]
    impressions: list[ImpressionRecord] = []
    for chunk in in_chunks([s.search_id for s in searches]):
        impressions.extend(
            ImpressionRecord(
                search_id=row.search_id, product_id=row.product_id, position=row.position, imposed=bool(row.imposed)
            )
            for row in db.session.execute(
                select(Impression.search_id, Impression.product_id, Impression.position, Impression.imposed).where(
                    Impression.search_id.in_(chunk), Impression.position <= max_position
                )
            )
        )
    events = [
        EventRecord(
            type=row.type,
            product_id=row.product_id,
            search_id=row.search_id,
            position=row.position,
            created_at=row.created_at,
        )
        for row in db.session.execute(
            select(Event.type, Event.product_id, Event.search_id, Event.position, Event.created_at)
            .where(Event.created_at >= since, Event.created_at < until, trusted_events())
            .order_by(Event.id)
        )
    ]
    products = [
        ProductRecord(product_id=p.id, text=card_text(product_card(p)), category=p.category_path or "")
        for p in db.session.scalars(select(Product).where(Product.is_active).order_by(Product.id))
    ]
    return FeedbackLog(searches=searches, impressions=impressions, events=events, products=products)


def events_since(since: datetime | None) -> int:
    """How many trusted feedback events arrived after `since` (all of them when None)."""
    stmt = select(func.count(Event.id)).where(trusted_events())
    if since is not None:
        stmt = stmt.where(Event.created_at > since)
    return int(db.session.scalar(stmt) or 0)


def last_successful_run(kind: str = "fine_tune") -> datetime | None:
    """When the newest successful job of this kind was created (its feedback window's end)."""
    return db.session.scalar(select(func.max(Job.created_at)).where(Job.kind == kind, Job.status == "succeeded"))
