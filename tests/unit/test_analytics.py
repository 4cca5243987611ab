"""Search analytics (webapp.services.analytics and its pages): query tables, latency
percentiles and volume per day, a query's detail, and charts fed without inline script."""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta

import numpy as np
import pytest

from webapp.extensions import db
from webapp.models import Event, Impression, SearchQuery, Visitor, utcnow
from webapp.services import analytics
from webapp.services.search_params import normalize_query


@pytest.fixture
def visitors(app):
    ids = [f"visitor-{n}" for n in range(4)]
    db.session.add_all(Visitor(id=v) for v in ids)
    db.session.commit()
    return ids


def search(
    text: str,
    *,
    visitor: str | None = None,
    results: int = 3,
    latency: float = 10.0,
    ago=timedelta(0),
    shown: list[int] = (),
    **fields,
) -> SearchQuery:
    """A logged search with its impressions (product ids at positions 1..n)."""
    row = SearchQuery(
        text=text,
        normalized=normalize_query(text),
        visitor_id=visitor,
        result_count=results,
        latency_ms=latency,
        created_at=utcnow() - ago,
        **fields,
    )
    db.session.add(row)
    db.session.flush()
    db.session.add_all(Impression(search_id=row.id, product_id=p, position=i) for i, p in enumerate(shown, start=1))
    db.session.commit()
    return row


def event(kind: str, search_row: SearchQuery, product_id: int, position: int | None = None) -> Event:
    row = Event(
        type=kind,
        visitor_id=search_row.visitor_id,
        product_id=product_id,
        search_id=search_row.id,
        position=position,
        created_at=search_row.created_at,
    )
    db.session.add(row)
    db.session.commit()
    return row


@pytest.mark.parametrize("size", [1, 2, 7, 100, 1001])
def test_percentile_matches_numpy(size):
    rng = random.Random(size)
    values = sorted(rng.lognormvariate(3, 1) for _ in range(size))
    for q in (0, 50, 95, 99, 100):
        assert analytics.percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)
    with pytest.raises(ValueError):
        analytics.percentile([], 50)


def test_daily_latency_per_day_with_empty_days(app):
    today = [float(v) for v in range(1, 101)]
    for value in today:
        search("towel", latency=value)
    for value in (5.0, 7.0):
        search("mug", latency=value, ago=timedelta(days=2))
    search("ancient", latency=999.0, ago=timedelta(days=30))
    days = analytics.daily_latency(7)
    assert len(days) == 7 and days[-1].day == utcnow().date()
    assert [d.searches for d in days] == [0, 0, 0, 0, 2, 0, 100]
    last = days[-1]
    assert (last.p50, last.p95, last.p99) == tuple(round(float(np.percentile(today, q)), 2) for q in (50, 95, 99))
    assert days[-3].p50 == 6.0 and days[-2].p50 is None
    charts = analytics.chart_data(days)
    assert charts["volume"]["series"][0]["data"] == [0, 0, 0, 0, 2, 0, 100]
    assert [s["label"] for s in charts["latency"]["series"]] == ["p50", "p95", "p99"]
    assert charts["latency"]["labels"][-1] == utcnow().date().isoformat()


def test_top_and_zero_result_queries(app, visitors):
    for n in range(3):
        search("Towel", visitor=visitors[n])
    search("towel ", visitor=visitors[0])
    search("mug", visitor=visitors[1])
    search("", results=10)  # browsing without a query is not a query
    for _ in range(2):
        search("unobtainium", results=0, visitor=visitors[2])
    search("qwerty", results=0)
    search("towel", ago=timedelta(days=10))  # outside the window
    top = analytics.top_queries(days=7)
    assert [(q.normalized, q.searches, q.visitors) for q in top] == [
        ("towel", 4, 3),
        ("unobtainium", 2, 1),
        ("mug", 1, 1),
        ("qwerty", 1, 0),
    ]
    assert top[1].zero_results == 2 and top[0].zero_results == 0
    zero = analytics.zero_result_queries(days=7)
    assert [(q.normalized, q.searches) for q in zero] == [("unobtainium", 2), ("qwerty", 1)]
    assert analytics.top_queries(days=30)[0].searches == 5


def test_low_click_through_needs_enough_searches_and_sorts_worst_first(app, make_product, visitors):
    p = make_product().id
    for n in range(4):  # towel: 4 searches, 3 clicked
        row = search("towel", visitor=visitors[n], shown=[p])
        if n < 3:
            event("click", row, p, 1)
    for n in range(4):  # mug: 4 searches, 1 clicked (twice: still one search with a click)
        row = search("mug", visitor=visitors[n], shown=[p])
        if n == 0:
            event("click", row, p, 1)
            event("click", row, p, 1)
    for _ in range(4):
        search("lamp", shown=[p])  # never clicked
    search("rare", shown=[p])  # too few searches to judge
    for _ in range(5):
        search("nothing", results=0)  # no results: that is the zero-result table's business
    low = analytics.low_click_through_queries(days=7, min_searches=4)
    assert [(q.normalized, q.clicked, q.searches) for q in low] == [("lamp", 0, 4), ("mug", 1, 4), ("towel", 3, 4)]
    assert low[1].click_through == 0.25
    assert [q.normalized for q in analytics.low_click_through_queries(days=7, min_searches=1)][:2] == ["lamp", "rare"]


def test_query_detail_shows_what_was_shown_and_what_was_done(app, make_product, visitors):
    a = make_product(external_id="A", title="Bath towel")
    b = make_product(external_id="B", title="Beach towel")
    c = make_product(external_id="C", title="Hand towel")
    first = search("towel", visitor=visitors[0], shown=[a.id, b.id], ago=timedelta(minutes=5))
    second = search("Towel", visitor=visitors[1], shown=[b.id, a.id, c.id])
    event("click", first, b.id, 2)
    event("click", second, b.id, 1)
    event("add_to_cart", second, b.id, 1)
    event("purchase", second, c.id, None)
    search("mug", shown=[a.id])
    detail = analytics.query_detail("towel")
    assert detail.stat.searches == 2 and detail.stat.clicked == 2
    by_id = {p.external_id: p for p in detail.products}
    assert detail.products[0].external_id == "B"  # most acted on first
    assert by_id["B"].impressions == 2 and by_id["B"].mean_position == 1.5
    assert by_id["B"].events == {"click": 2, "add_to_cart": 1}
    assert by_id["A"].events == {} and by_id["A"].impressions == 2 and by_id["C"].events == {"purchase": 1}
    newest = detail.recent[0]
    assert newest.search.id == second.id
    assert newest.shown == [
        (1, "B", "Beach towel", ["click", "add_to_cart"]),
        (2, "A", "Bath towel", []),
        (3, "C", "Hand towel", ["purchase"]),
    ]
    assert detail.recent[1].shown == [(1, "A", "Bath towel", []), (2, "B", "Beach towel", ["click"])]
    assert analytics.query_detail("nothing like it").stat is None


def test_overview_counts(app, make_product, visitors):
    p = make_product()
    make_product(is_active=False)
    row = search("towel", visitor=visitors[0], shown=[p.id])
    search("void", results=0)
    search("old", ago=timedelta(days=3))
    event("click", row, p.id, 1)
    counts = analytics.overview_counts()
    assert counts["products"] == 2 and counts["active_products"] == 1
    assert counts["searches"] == 3 and counts["searches_24h"] == 2 and counts["zero_24h"] == 1
    assert counts["events_24h"] == {"click": 1, "add_to_cart": 0, "purchase": 0}


def scripts(page: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", page)


def test_analytics_page_feeds_the_charts_as_json_without_inline_script(client, login, make_product, visitors):
    login("analyst")
    p = make_product(title="Bath towel")
    for latency in (10.0, 20.0, 30.0):
        search("towel", latency=latency, visitor=visitors[0], shown=[p.id])
    search("</script><script>alert(1)</script>", results=0, latency=20.0)
    response = client.get("/admin/analytics?days=7&min_searches=2")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "towel" in page and "/admin/analytics/query?q=towel" in page
    for tag in scripts(page):  # every script is a file or a data block, never inline code
        assert 'src="' in tag or 'type="application/json"' in tag, tag
    assert "<script>alert(1)" not in page
    blocks = dict(re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.S))
    latency = json.loads(blocks["chart-latency"])
    assert latency["series"][0]["data"][-1] == 20.0 and len(latency["labels"]) == 7
    assert json.loads(blocks["chart-volume"])["series"][0]["data"][-1] == 4
    assert 'data-chart="chart-latency"' in page and "vendor/chart.umd.min.js" in page


def test_query_detail_page(client, login, make_product, visitors):
    login("analyst")
    a = make_product(external_id="A", title="Bath towel")
    row = search("towel", visitor=visitors[0], shown=[a.id])
    event("click", row, a.id, 1)
    page = client.get("/admin/analytics/query?q=%20TOWEL").get_data(as_text=True)
    assert "“towel”" in page and "Bath towel" in page and "ev-click" in page
    assert client.get("/admin/analytics/query?q=").headers["Location"] == "/admin/analytics"


def test_the_vendored_chart_library_is_served_locally(client):
    response = client.get("/static/vendor/chart.umd.min.js")
    assert response.status_code == 200 and b"Chart.js v4" in response.data[:200]
    assert client.get("/static/vendor/chart.js.LICENSE.md").status_code == 200


def test_query_detail_shows_a_spelling_correction(client, login, visitors):
    login("analyst")
    search("wireles mouse", visitor=visitors[0], corrected_text="wireless mouse")
    page = client.get("/admin/analytics/query?q=wireles+mouse").get_data(as_text=True)
    assert "searched as “wireless mouse”" in page and "spelling corrected" in page
