"""Popular recent queries that found something: chips for searches that found nothing, and
the query half of the instant suggestions (webapp/services/instant_suggest.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, distinct, func, select

from webapp.extensions import db
from webapp.models import SearchQuery, utcnow


def _recent_good_queries(days: float) -> list[ColumnElement[bool]]:
    since = utcnow() - timedelta(days=days)
    return [
        SearchQuery.created_at >= since,
        SearchQuery.result_count > 0,
        SearchQuery.normalized != "",
        SearchQuery.fuzzy.is_(False),  # never suggest a misspelling back to shoppers
    ]


def popular_queries(limit: int = 8, days: int = 30) -> list[str]:
    """The most searched normalized queries with results in the recent window."""
    stmt = (
        select(SearchQuery.normalized, func.count().label("n"))
        .where(*_recent_good_queries(days))
        .group_by(SearchQuery.normalized)
        .order_by(func.count().desc(), SearchQuery.normalized)
        .limit(limit)
    )
    return [row.normalized for row in db.session.execute(stmt)]


def popular_query_counts(limit: int, days: float, min_visitors: int = 1) -> list[tuple[str, int]]:
    """(normalized query, how many visitors searched it) in the recent window, most visitors first.

    Visitors, not searches, are counted: paging through results or one client repeating a
    query must not make it popular; and a query only `min_visitors` or more people searched
    is never shown to everyone (it could be one shopper's private text).
    """
    visitors = func.count(distinct(SearchQuery.visitor_id))
    stmt = (
        select(SearchQuery.normalized, visitors.label("n"))
        .where(*_recent_good_queries(days))
        .group_by(SearchQuery.normalized)
        .having(visitors >= min_visitors)
        .order_by(visitors.desc(), SearchQuery.normalized)
        .limit(limit)
    )
    return [(row.normalized, row.n) for row in db.session.execute(stmt)]
