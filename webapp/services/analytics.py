"""Search analytics for the admin: what people search, what fails, how fast, what they click.

Every results page served is one search row (later pages of a query count too), and a
search "got a click" when at least one click event names it. Percentiles are computed in
Python over the window's rows, so the numbers are the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Select, case, distinct, exists, func, select

from webapp.extensions import db
from webapp.models import EVENT_TYPES, Event, Impression, Product, SearchQuery, utcnow

MAX_DAYS = 366


@dataclass(frozen=True)
class QueryStat:
    normalized: str
    searches: int
    visitors: int
    zero_results: int
    clicked: int  # searches with at least one click
    last_seen: datetime

    @property
    def click_through(self) -> float:
        return self.clicked / self.searches if self.searches else 0.0


@dataclass(frozen=True)
class DayStat:
    day: date
    searches: int
    p50: float | None
    p95: float | None
    p99: float | None


def window_start(days: int) -> datetime:
    """Midnight UTC starting the last `days` calendar days, today included."""
    days = min(max(days, 1), MAX_DAYS)
    today = utcnow().date()
    return datetime.combine(today - timedelta(days=days - 1), datetime.min.time())


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def _query_stats(days: int) -> Select:
    clicked = exists().where(Event.search_id == SearchQuery.id, Event.type == "click")
    return (
        select(
            SearchQuery.normalized,
            func.count().label("searches"),
            func.count(distinct(SearchQuery.visitor_id)).label("visitors"),
            func.sum(case((SearchQuery.result_count == 0, 1), else_=0)).label("zero_results"),
            func.sum(case((clicked, 1), else_=0)).label("clicked"),
            func.max(SearchQuery.created_at).label("last_seen"),
        )
        .where(SearchQuery.created_at >= window_start(days), SearchQuery.normalized != "")
        .group_by(SearchQuery.normalized)
    )


def _stats(stmt: Select) -> list[QueryStat]:
    return [
        QueryStat(r.normalized, r.searches, r.visitors, int(r.zero_results or 0), int(r.clicked or 0), r.last_seen)
        for r in db.session.execute(stmt)
    ]


def top_queries(days: int = 7, limit: int = 20) -> list[QueryStat]:
    """The most frequent queries of the window."""
    stmt = _query_stats(days).order_by(func.count().desc(), SearchQuery.normalized).limit(limit)
    return _stats(stmt)


def zero_result_queries(days: int = 7, limit: int = 20) -> list[QueryStat]:
    """Queries that found nothing, most frequent first (their counts cover the empty searches only)."""
    stmt = (
        _query_stats(days)
        .where(SearchQuery.result_count == 0)
        .order_by(func.count().desc(), SearchQuery.normalized)
        .limit(limit)
    )
    return _stats(stmt)


def low_click_through_queries(days: int = 7, min_searches: int = 5, limit: int = 20) -> list[QueryStat]:
    """Queries with results and at least min_searches searches, lowest click-through first."""
    clicked_share = (
        func.sum(case((exists().where(Event.search_id == SearchQuery.id, Event.type == "click"), 1.0), else_=0.0))
        / func.count()
    )
    stmt = (
        _query_stats(days)
        .where(SearchQuery.result_count > 0)
        .having(func.count() >= max(min_searches, 1))
        .order_by(clicked_share, func.count().desc(), SearchQuery.normalized)
        .limit(limit)
    )
    return _stats(stmt)


def daily_latency(days: int = 14) -> list[DayStat]:
    """Per calendar day (UTC) of the window: search volume and latency p50/p95/p99 in ms."""
    start = window_start(days)
    by_day: dict[date, list[float]] = {}
    rows = db.session.execute(
        select(SearchQuery.created_at, SearchQuery.latency_ms).where(SearchQuery.created_at >= start)
    )
    for created_at, latency in rows:
        by_day.setdefault(created_at.date(), []).append(float(latency or 0.0))
    out = []
    for offset in range((utcnow().date() - start.date()).days + 1):
        day = start.date() + timedelta(days=offset)
        values = sorted(by_day.get(day, []))
        if values:
            out.append(DayStat(day, len(values), *(round(percentile(values, q), 2) for q in (50, 95, 99))))
        else:
            out.append(DayStat(day, 0, None, None, None))
    return out


def chart_data(days: list[DayStat]) -> dict:
    """The latency and volume series in the shape static/js/admin_charts.js draws."""
    labels = [d.day.isoformat() for d in days]
    return {
        "latency": {
            "type": "line",
            "labels": labels,
            "yLabel": "ms",
            "series": [{"label": f"p{q}", "data": [getattr(d, f"p{q}") for d in days]} for q in (50, 95, 99)],
        },
        "volume": {
            "type": "bar",
            "labels": labels,
            "yLabel": "searches",
            "series": [{"label": "searches", "data": [d.searches for d in days]}],
        },
    }


@dataclass
class ShownProduct:
    external_id: str
    title: str
    impressions: int = 0
    mean_position: float = 0.0
    events: dict[str, int] = field(default_factory=dict)


@dataclass
class SearchDetail:
    search: SearchQuery
    shown: list[tuple[int, str, str, list[str]]]  # position, external id, title, event types on it
    other_events: list[tuple[str, str]]  # (type, external id) tied to the search but not to a shown product


@dataclass
class QueryDetail:
    normalized: str
    stat: QueryStat | None
    products: list[ShownProduct]
    recent: list[SearchDetail]


def _product_summary(normalized: str, start: datetime, limit: int) -> list[ShownProduct]:
    in_window = (SearchQuery.normalized == normalized, SearchQuery.created_at >= start)
    shown = db.session.execute(
        select(Product.id, Product.external_id, Product.title, func.count(), func.avg(Impression.position))
        .join(Impression, Impression.product_id == Product.id)
        .join(SearchQuery, SearchQuery.id == Impression.search_id)
        .where(*in_window)
        .group_by(Product.id, Product.external_id, Product.title)
    ).all()
    products = {r[0]: ShownProduct(r[1], r[2], r[3], round(float(r[4]), 2)) for r in shown}
    acted = db.session.execute(
        select(Product.id, Product.external_id, Product.title, Event.type, func.count())
        .join(Event, Event.product_id == Product.id)
        .join(SearchQuery, SearchQuery.id == Event.search_id)
        .where(*in_window)
        .group_by(Product.id, Product.external_id, Product.title, Event.type)
    ).all()
    for product_id, external_id, title, kind, count in acted:
        products.setdefault(product_id, ShownProduct(external_id, title)).events[kind] = count
    ranked = sorted(products.values(), key=lambda p: (-sum(p.events.values()), -p.impressions, p.mean_position))
    return ranked[:limit]


def _recent_searches(normalized: str, limit: int) -> list[SearchDetail]:
    searches = db.session.scalars(
        select(SearchQuery)
        .where(SearchQuery.normalized == normalized)
        .order_by(SearchQuery.created_at.desc(), SearchQuery.id.desc())
        .limit(limit)
    ).all()
    ids = [s.id for s in searches]
    if not ids:
        return []
    impressions = db.session.execute(
        select(Impression.search_id, Impression.position, Impression.product_id, Product.external_id, Product.title)
        .join(Product, Product.id == Impression.product_id)
        .where(Impression.search_id.in_(ids))
        .order_by(Impression.search_id, Impression.position)
    ).all()
    events = db.session.execute(
        select(Event.search_id, Event.product_id, Event.type, Product.external_id)
        .join(Product, Product.id == Event.product_id)
        .where(Event.search_id.in_(ids))
        .order_by(Event.id)
    ).all()
    acted: dict[tuple[int, int], list[str]] = {}
    for search_id, product_id, kind, _ in events:
        acted.setdefault((search_id, product_id), []).append(kind)
    details = []
    for search in searches:
        shown = [
            (i.position, i.external_id, i.title, acted.get((search.id, i.product_id), []))
            for i in impressions
            if i.search_id == search.id
        ]
        shown_ids = {i.product_id for i in impressions if i.search_id == search.id}
        other = [(e.type, e.external_id) for e in events if e.search_id == search.id and e.product_id not in shown_ids]
        details.append(SearchDetail(search, shown, other))
    return details


def query_detail(normalized: str, days: int = 30, recent: int = 20, products: int = 50) -> QueryDetail:
    """One query's numbers over the window, its products with what shoppers did with them,
    and its most recent searches with what each showed (by position) and what was acted on."""
    stats = _stats(_query_stats(days).where(SearchQuery.normalized == normalized))
    return QueryDetail(
        normalized=normalized,
        stat=stats[0] if stats else None,
        products=_product_summary(normalized, window_start(days), products),
        recent=_recent_searches(normalized, recent),
    )


def overview_counts() -> dict:
    """Headline numbers for the console's first page."""
    day_ago = utcnow() - timedelta(days=1)

    def count(stmt: Select) -> int:
        return int(db.session.scalar(stmt) or 0)

    events = dict(
        db.session.execute(
            select(Event.type, func.count()).where(Event.created_at >= day_ago).group_by(Event.type)
        ).all()
    )
    return {
        "products": count(select(func.count()).select_from(Product)),
        "active_products": count(select(func.count()).select_from(Product).where(Product.is_active)),
        "searches": count(select(func.count()).select_from(SearchQuery)),
        "searches_24h": count(select(func.count()).select_from(SearchQuery).where(SearchQuery.created_at >= day_ago)),
        "zero_24h": count(
            select(func.count())
            .select_from(SearchQuery)
            .where(SearchQuery.created_at >= day_ago, SearchQuery.result_count == 0)
        ),
        "events_24h": {kind: int(events.get(kind, 0)) for kind in EVENT_TYPES},
    }
