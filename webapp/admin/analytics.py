"""Search analytics pages: the queries overview with charts, and one query's detail."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from webapp.admin import bp
from webapp.services.analytics import (
    MAX_DAYS,
    chart_data,
    daily_latency,
    low_click_through_queries,
    query_detail,
    top_queries,
    zero_result_queries,
)
from webapp.services.search_params import normalize_query

DAY_CHOICES = (1, 7, 14, 30, 90)


def _days(default: int) -> int:
    return min(max(request.args.get("days", default, type=int), 1), MAX_DAYS)


@bp.get("/analytics")
def analytics():
    """Top, zero-result and low click-through queries; latency percentiles and volume per day."""
    days = _days(14)
    min_searches = min(max(request.args.get("min_searches", 5, type=int), 1), 100_000)
    per_day = daily_latency(days)
    return render_template(
        "admin/analytics.html",
        days=days,
        day_choices=DAY_CHOICES,
        min_searches=min_searches,
        top=top_queries(days),
        zero=zero_result_queries(days),
        low_ctr=low_click_through_queries(days, min_searches),
        per_day=per_day,
        charts=chart_data(per_day),
    )


@bp.get("/analytics/query")
def analytics_query():
    """One query (by normalized text): what was shown, at which positions, and what was acted on."""
    text = request.args.get("q", "")[:200]
    normalized = normalize_query(text)
    if not normalized:
        return redirect(url_for("admin.analytics"))
    days = _days(30)
    return render_template("admin/query_detail.html", detail=query_detail(normalized, days), days=days)
