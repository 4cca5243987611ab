"""The feedback browser (webapp.admin.feedback, webapp.services.feedback_browser)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from werkzeug.datastructures import MultiDict

from webapp.extensions import db
from webapp.models import Event, SearchQuery, Visitor, utcnow
from webapp.services.feedback_browser import EventFilters, list_events


@pytest.fixture
def history(app, make_product):
    """Two visitors, two queries, five events at known times (newest last)."""
    towel = make_product(external_id="TOWEL-1", title="Bath towel")
    mug = make_product(external_id="MUG-1", title="Coffee mug")
    db.session.add_all([Visitor(id="aaaa-1111"), Visitor(id="bbbb-2222")])
    db.session.flush()  # no relationships: the unit of work does not order these inserts by itself
    q1 = SearchQuery(text="Bath Towel", normalized="bath towel", visitor_id="aaaa-1111", result_count=1)
    q2 = SearchQuery(text="mug", normalized="mug", visitor_id="bbbb-2222", result_count=1)
    db.session.add_all([q1, q2])
    db.session.flush()
    start = utcnow() - timedelta(hours=1)
    rows = [
        ("click", "aaaa-1111", towel.id, q1.id, 1),
        ("add_to_cart", "aaaa-1111", towel.id, q1.id, 1),
        ("click", "bbbb-2222", mug.id, q2.id, 1),
        ("purchase", "aaaa-1111", towel.id, q1.id, 1),
        ("purchase", "bbbb-2222", mug.id, None, None),
    ]
    for n, (kind, visitor, product_id, search_id, position) in enumerate(rows):
        db.session.add(
            Event(
                type=kind,
                visitor_id=visitor,
                product_id=product_id,
                search_id=search_id,
                position=position,
                created_at=start + timedelta(minutes=n),
            )
        )
    db.session.commit()


def kinds(filters: EventFilters, **kw) -> list[tuple[str, str]]:
    return [(r.type, r.external_id) for r in list_events(filters, **kw).rows]


def test_newest_first_with_names(history):
    page = list_events(EventFilters())
    assert page.pagination.total == 5
    first = page.rows[0]
    assert (first.type, first.external_id, first.title, first.query) == ("purchase", "MUG-1", "Coffee mug", None)
    assert page.rows[1].query == "Bath Towel" and page.rows[1].position == 1


def test_each_filter_and_their_combination(history):
    assert kinds(EventFilters(type="click")) == [("click", "MUG-1"), ("click", "TOWEL-1")]
    assert len(kinds(EventFilters(visitor="aaaa"))) == 3  # a prefix of the id is enough
    assert kinds(EventFilters(visitor="aaaa-1111", type="purchase")) == [("purchase", "TOWEL-1")]
    assert kinds(EventFilters(product="MUG-1")) == [("purchase", "MUG-1"), ("click", "MUG-1")]
    assert len(kinds(EventFilters(query="towel"))) == 3
    assert kinds(EventFilters(query="mug", type="click")) == [("click", "MUG-1")]
    assert kinds(EventFilters(product="NOPE")) == [] and kinds(EventFilters(visitor="a%")) == []


def test_filters_from_a_query_string(history):
    filters = EventFilters.from_args(
        MultiDict({"type": "refund", "visitor": " aaaa ", "query": "  BATH   Towel ", "product": ""})
    )
    assert filters == EventFilters(type="", visitor="aaaa", product="", query="bath towel")
    assert filters.as_args() == {"visitor": "aaaa", "query": "bath towel"}


def test_pagination(history):
    first = list_events(EventFilters(), page=1, per_page=2)
    assert first.pagination.pages == 3 and len(first.rows) == 2
    assert [r.id for r in list_events(EventFilters(), page=3, per_page=2).rows] == [
        min(r.id for r in list_events(EventFilters()).rows)
    ]


def test_events_page(client, login, history):
    login("analyst")
    page = client.get("/admin/events?type=purchase&visitor=aaaa").get_data(as_text=True)
    assert "Bath towel" in page and "Coffee mug" not in page and "1 in all" in page
    assert 'value="aaaa"' in page and '<option value="purchase" selected>' in page
    assert "/admin/analytics/query?q=Bath+Towel" in page
    assert "No events match." in client.get("/admin/events?product=NOPE").get_data(as_text=True)
