"""Feedback events (webapp.services.events): validated as a batch, stored all or nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.serving.searcher import SearchRequest
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Event, Visitor
from webapp.services.events import parse_event, record_events
from webapp.services.search import search_and_log

VISITOR = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Event))


@pytest.fixture
def shown(make_product):
    """Two towels shown to VISITOR in one search; returns (search id, {external id: position})."""
    make_product(external_id="TOWEL1", title="Bath towel", price=12.5, rating_count=90)
    make_product(external_id="TOWEL2", title="Beach towel", price=20.0, rating_count=10)
    make_product(external_id="MUG1", title="Coffee mug", price=6.0)
    query, response = search_and_log(SearchRequest(text="towel"), VISITOR)
    positions = {hit.card.external_id: hit.position for hit in response.hits}
    assert set(positions) == {"TOWEL1", "TOWEL2"}
    return query.id, positions


def test_valid_batch_is_stored(shown, show_product):
    sid, pos = shown
    show_product(VISITOR, "MUG1")
    before = event_count()
    stored = record_events(
        [
            {"type": "click", "product_id": "TOWEL1", "search_id": sid, "position": pos["TOWEL1"]},
            {"type": "add_to_cart", "product_id": "TOWEL2", "search_id": sid, "position": pos["TOWEL2"]},
            {"type": "purchase", "product_id": "TOWEL1", "search_id": sid, "quantity": 3},
            {"type": "add_to_cart", "product_id": "MUG1"},
        ],
        VISITOR,
        max_batch=10,
    )
    assert event_count() == before + 4
    rows = db.session.scalars(select(Event).order_by(Event.id)).all()
    assert [(e.type, e.search_id, e.position, e.quantity) for e in rows] == [
        ("click", sid, pos["TOWEL1"], 1),
        ("add_to_cart", sid, pos["TOWEL2"], 1),
        ("purchase", sid, None, 3),
        ("add_to_cart", None, None, 1),
    ]
    assert all(e.visitor_id == VISITOR for e in rows)
    assert rows[2].value == pytest.approx(37.5)  # price x quantity for purchases only
    assert rows[0].value is None
    assert [e.id for e in stored] == [e.id for e in rows]


def test_new_visitor_row_is_created(make_product, show_product):
    make_product(external_id="MUG1")
    show_product(OTHER, "MUG1")
    record_events([{"type": "click", "product_id": "MUG1"}], OTHER, max_batch=10)
    assert db.session.get(Visitor, OTHER) is not None


def test_position_without_search_is_refused(make_product):
    make_product(external_id="MUG1")
    error = _rejected([{"type": "click", "product_id": "MUG1", "position": 3}])
    assert error.details == [{"index": 0, "error": "position needs the search_id or recommendation_id it was shown in"}]


def _rejected(raw, visitor=VISITOR, max_batch=10) -> InputError:
    before = event_count()
    with pytest.raises(InputError) as caught:
        record_events(raw, visitor, max_batch=max_batch)
    assert event_count() == before, "a rejected batch must store nothing"
    return caught.value


def test_one_invalid_event_rejects_the_whole_batch(shown):
    sid, pos = shown
    error = _rejected(
        [
            {"type": "click", "product_id": "TOWEL1", "search_id": sid, "position": pos["TOWEL1"]},
            {"type": "click", "product_id": "TOWEL2", "search_id": sid, "position": pos["TOWEL2"]},
            {"type": "view", "product_id": "TOWEL1"},
        ]
    )
    assert "nothing was stored" in str(error)
    assert error.details == [{"index": 2, "error": "type must be one of click, add_to_cart, purchase"}]
    assert event_count() == 0


def test_unknown_product_rejects_batch(shown):
    error = _rejected([{"type": "click", "product_id": "TOWEL1"}, {"type": "click", "product_id": "NOPE"}])
    assert error.details == [{"index": 1, "error": "unknown product 'NOPE'"}]


def test_search_of_another_visitor_is_rejected(shown):
    sid, pos = shown
    error = _rejected(
        [{"type": "click", "product_id": "TOWEL1", "search_id": sid, "position": pos["TOWEL1"]}], visitor=OTHER
    )
    assert error.details == [{"index": 0, "error": f"unknown search {sid}"}]


def test_unknown_search_is_rejected(shown):
    sid, _ = shown
    error = _rejected([{"type": "click", "product_id": "TOWEL1", "search_id": sid + 100}])
    assert error.details[0]["error"] == f"unknown search {sid + 100}"


def test_position_not_matching_impression_is_rejected(shown):
    sid, pos = shown
    wrong = pos["TOWEL2"]  # TOWEL1 was not shown there
    error = _rejected([{"type": "click", "product_id": "TOWEL1", "search_id": sid, "position": wrong}])
    assert "not shown at that position" in error.details[0]["error"]
    # A product never shown in that search is rejected too.
    error = _rejected([{"type": "click", "product_id": "MUG1", "search_id": sid, "position": 1}])
    assert "not shown at that position" in error.details[0]["error"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "click", "product_id": "TOWEL1", "price": 1}, "unknown fields: price"),
        ({"type": "click", "product_id": "TOWEL1", "visitor_id": "x", "extra": 1}, "unknown fields: extra, visitor_id"),
        ({"type": "click", "product_id": "TOWEL1", "position": True}, "position must be a whole number"),
        ({"type": "click", "product_id": "TOWEL1", "search_id": True}, "search_id must be a whole number"),
        ({"type": "purchase", "product_id": "TOWEL1", "quantity": True}, "quantity must be a whole number"),
        ({"type": "click", "product_id": "TOWEL1", "position": 1.0}, "position must be a whole number"),
        ({"type": "click", "product_id": "TOWEL1", "position": "1"}, "position must be a whole number"),
        ({"type": "click", "product_id": "TOWEL1", "position": 0}, "position must be a whole number"),
        ({"type": "purchase", "product_id": "TOWEL1", "quantity": 101}, "quantity must be a whole number"),
        ({"type": "purchase", "product_id": "TOWEL1", "quantity": 0}, "quantity must be a whole number"),
        ({"type": "click", "product_id": 5}, "product_id must be"),
        ({"type": "click", "product_id": ""}, "product_id must be"),
        ({"type": "click", "product_id": "x" * 65}, "product_id must be"),
        ({"product_id": "TOWEL1"}, "type must be one of"),
        ("click", "event must be an object"),
    ],
)
def test_bad_event_shapes_are_rejected(shown, raw, message):
    error = _rejected([raw])
    assert len(error.details) == 1 and error.details[0]["index"] == 0
    assert error.details[0]["error"].startswith(message)


def test_parse_event_accepts_minimal_event():
    event = parse_event({"type": "purchase", "product_id": "A1"})
    assert (event.type, event.product_external_id, event.search_id, event.position, event.quantity) == (
        "purchase",
        "A1",
        None,
        None,
        1,
    )


@pytest.mark.parametrize("raw", [None, [], {}, "events", {"events": []}])
def test_batch_must_be_a_non_empty_list(app, raw):
    assert "non-empty list" in str(_rejected(raw))


def test_batch_size_is_bounded(shown):
    error = _rejected([{"type": "click", "product_id": "TOWEL1"}] * 4, max_batch=3)
    assert "at most 3 events" in str(error)
