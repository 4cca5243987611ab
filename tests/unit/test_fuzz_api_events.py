"""Bad input at the events API, by property: any JSON body and any near-valid event batch
gets a 201 or a JSON 4xx naming the error, never a 5xx, and a batch is stored whole or not at
all, only with events a real search of the same visitor showed. Search input:
test_fuzz_api.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from tests.unit.fuzz_support import FUZZ, assert_json_error, count, open_shop
from webapp.extensions import db
from webapp.models import EVENT_TYPES, Event, Impression, Product, SearchQuery


@pytest.fixture
def shop(app, client, make_product):
    """A few products, limits out of the way, and one search this client made (with its hits)."""
    return open_shop(app, client, make_product)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=16,
)


@FUZZ
@given(body=st.one_of(json_values, st.dictionaries(st.just("events"), json_values)))
def test_any_json_body_is_refused_as_json_and_stores_nothing(client, shop, body):
    before = count(Event)
    response = client.post("/api/events", json=body)
    assert_json_error(response)
    assert count(Event) == before


@st.composite
def near_valid_events(draw, shop):
    """Event batches built from real ids and real junk, so some are valid and most are not."""
    search_id, hits = shop
    product_ids = [p for p, _ in hits] + ["XSS", "NOPE", "", "x" * 65, "<script>"]
    events = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        event = {
            "type": draw(st.sampled_from([*EVENT_TYPES, "view", "", "CLICK"])),
            "product_id": draw(st.one_of(st.sampled_from(product_ids), st.integers(), st.none())),
        }
        if draw(st.booleans()):
            event["search_id"] = draw(
                st.one_of(st.just(search_id), st.integers(-5, search_id + 5), st.integers(), st.text(max_size=3))
            )
        if draw(st.booleans()):
            event["position"] = draw(st.one_of(st.integers(-1, 30), st.floats(), st.booleans()))
        if draw(st.booleans()):
            event["quantity"] = draw(st.one_of(st.integers(-1, 102), st.just("2")))
        if draw(st.integers(0, 9)) == 0:
            event[draw(st.text(max_size=6))] = draw(json_values)
        events.append(event)
    return events


def _is_valid_as_stored(event: Event, visitor_id: str) -> bool:
    """What a stored row must satisfy: a real product, and a search of this visitor that showed it."""
    if db.session.get(Product, event.product_id) is None or not 1 <= event.quantity <= 100:
        return False
    if event.search_id is None:
        return event.position is None
    search = db.session.get(SearchQuery, event.search_id)
    shown = select(Impression.id).where(
        Impression.search_id == event.search_id, Impression.product_id == event.product_id
    )
    if event.position is not None:
        shown = shown.where(Impression.position == event.position)
    return search is not None and search.visitor_id == visitor_id and db.session.scalar(shown) is not None


@FUZZ
@given(data=st.data())
def test_event_batches_store_all_valid_or_nothing(client, shop, data):
    events = data.draw(near_valid_events(shop))
    before = count(Event)
    response = client.post("/api/events", json={"events": events})
    assert response.status_code in (201, 400), (events, response.data[:300])
    if response.status_code == 400:
        assert_json_error(response)
        assert count(Event) == before
        return
    body = response.get_json()
    assert body["stored"] == len(events) == count(Event) - before
    visitor = db.session.get(SearchQuery, shop[0]).visitor_id
    assert all(_is_valid_as_stored(db.session.get(Event, i), visitor) for i in body["ids"])


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("[" * 8_000 + "]" * 8_000, "application/json"),  # deeper than the parser's stack, within the 32 KB limit
        ('{"events": [' + "[" * 5000 + "]" * 5000 + "]}", "application/json"),
        (b"\xff\xfe{", "application/json"),
        ('{"events": [{"type": "click", "product_id": "P00001", "quantity": NaN}]}', "application/json"),
        ('{"events": [{"type": "click", "product_id": "P00001"}]}', "text/plain"),
        ("events=1", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_event_bodies_are_json_400s(client, shop, data, content_type):
    response = client.post("/api/events", data=data, content_type=content_type)
    assert response.status_code == 400
    assert_json_error(response)
    assert count(Event) == 0


def test_a_huge_event_batch_is_refused_whole(client, shop):
    search_id, hits = shop
    click = {"type": "click", "product_id": hits[0][0], "search_id": search_id, "position": hits[0][1]}
    response = client.post("/api/events", json={"events": [click] * 101})
    assert "at most 100 events" in assert_json_error(response)["error"] and count(Event) == 0
