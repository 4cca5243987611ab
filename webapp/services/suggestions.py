"""Suggestions for searches that found nothing: popular recent queries that did find something."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import SearchQuery, utcnow


def popular_queries(limit: int = 8, days: int = 30) -> list[str]:
    """The most searched normalized queries with results in the recent window."""
    since = utcnow() - timedelta(days=days)
    stmt = (
        select(SearchQuery.normalized, func.count().label("n"))
        .where(
            SearchQuery.created_at >= since,
            SearchQuery.result_count > 0,
            SearchQuery.normalized != "",
            SearchQuery.fuzzy.is_(False),  # never suggest a misspelling back to shoppers
        )
        .group_by(SearchQuery.normalized)
        .order_by(func.count().desc(), SearchQuery.normalized)
        .limit(limit)
    )
    return [row.normalized for row in db.session.execute(stmt)]
