"""Which logged queries may be shown to every shopper: the instant suggestions
(webapp/services/instant_suggest.py), the home page's "Popular" chips and the chips under a
search that found nothing all go through `popular_query_counts`, one rule for all.

A query is suggestible when, in the recent window, it found something without spelling help
and was searched by at least SUGGEST_MIN_VISITORS visitors from at least SUGGEST_MIN_ADDRESSES
client networks (webapp.services.client_hash) in at least SUGGEST_MIN_HOURS distinct clock
hours, and no phrase of the admin's blocklist occurs in it. Visitors alone are not enough:
one client with two cookies put a scam domain into everyone's autocomplete within seconds;
networks and hours make that take several networks and patience. The admin reviews the
queries that became suggestible (`unreviewed_suggestions`) and blocks what should not show.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, distinct, func, select

from webapp.extensions import db
from webapp.models import SearchQuery, SuggestionBlock, SuggestionReview, utcnow

_PAGE = 500  # rows read per round while the blocklist keeps filtering some out


def _recent_good_queries(days: float) -> list[ColumnElement[bool]]:
    since = utcnow() - timedelta(days=days)
    return [
        SearchQuery.created_at >= since,
        SearchQuery.result_count > 0,
        SearchQuery.normalized != "",
        SearchQuery.fuzzy.is_(False),  # never suggest a misspelling back to shoppers
        SearchQuery.corrected_text.is_(None),  # nor one the page corrected
    ]


def _hour_of(column) -> ColumnElement:
    """The clock hour of a timestamp, comparable within one database."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%d %H", column)


def blocked_phrases() -> list[str]:
    """The admin's blocklist, normalized phrases."""
    return list(db.session.scalars(select(SuggestionBlock.phrase).order_by(SuggestionBlock.phrase)))


def blocklist_pattern(phrases: list[str]) -> re.Pattern[str] | None:
    """A pattern matching any phrase as whole words ("scam" blocks "scam.example" but not "scampi")."""
    if not phrases:
        return None
    return re.compile("|".join(rf"(?<!\w){re.escape(p)}(?!\w)" for p in sorted(phrases, key=len, reverse=True)))


def _suggestible(
    limit: int, days: float, min_visitors: int, min_addresses: int | None, min_hours: int | None
) -> list[tuple[str, int, datetime]]:
    config = current_app.config
    min_addresses = config["SUGGEST_MIN_ADDRESSES"] if min_addresses is None else min_addresses
    min_hours = config["SUGGEST_MIN_HOURS"] if min_hours is None else min_hours
    visitors = func.count(distinct(SearchQuery.visitor_id))
    addresses = func.count(distinct(SearchQuery.client_hash))
    hours = func.count(distinct(_hour_of(SearchQuery.created_at)))
    first = func.min(SearchQuery.created_at)
    stmt = (
        select(SearchQuery.normalized, visitors.label("n"), first.label("first"))
        .where(*_recent_good_queries(days))
        .group_by(SearchQuery.normalized)
        .having(visitors >= min_visitors, addresses >= min_addresses, hours >= min_hours)
        .order_by(visitors.desc(), SearchQuery.normalized)
    )
    blocked = blocklist_pattern(blocked_phrases())
    found: list[tuple[str, int, datetime]] = []
    offset = 0
    while len(found) < limit:
        rows = db.session.execute(stmt.offset(offset).limit(_PAGE if blocked else limit)).all()
        found.extend((r.normalized, r.n, r.first) for r in rows if not (blocked and blocked.search(r.normalized)))
        if blocked is None or len(rows) < _PAGE:
            break
        offset += _PAGE
    return found[:limit]


def popular_query_counts(
    limit: int,
    days: float,
    min_visitors: int = 1,
    *,
    min_addresses: int | None = None,
    min_hours: int | None = None,
) -> list[tuple[str, int]]:
    """(normalized query, how many visitors searched it) for the suggestible queries, most visitors first.

    Visitors, not searches, are counted: paging through results or one client repeating a query
    must not make it popular. `min_addresses` and `min_hours` default to the app's settings.
    """
    return [(text, n) for text, n, _ in _suggestible(limit, days, min_visitors, min_addresses, min_hours)]


def popular_queries(limit: int = 8) -> list[str]:
    """The storefront's popular searches (home page, no-results page): the suggestion rule, top `limit`."""
    config = current_app.config
    return [
        text for text, _ in popular_query_counts(limit, config["SUGGEST_QUERY_DAYS"], config["SUGGEST_MIN_VISITORS"])
    ]


def unreviewed_suggestions(limit: int = 100) -> list[tuple[str, int, datetime]]:
    """Suggestible queries no admin has kept yet, newest first: (query, visitors, first searched in the window)."""
    config = current_app.config
    reviewed = set(db.session.scalars(select(SuggestionReview.normalized)))
    rows = _suggestible(
        config["SUGGEST_MAX_QUERIES"], config["SUGGEST_QUERY_DAYS"], config["SUGGEST_MIN_VISITORS"], None, None
    )
    fresh = [row for row in rows if row[0] not in reviewed]
    return sorted(fresh, key=lambda row: row[2], reverse=True)[:limit]
