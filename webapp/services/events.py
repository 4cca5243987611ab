"""Recording shoppers' feedback events: validated as a batch, stored all or nothing.

Each event is tied to something its visitor was shown (a search's impression, or without a
search a product page or search result, webapp.services.feedback_trust); a visitor past the
plausible purchase or cart rate has their events stored flagged and left out of the signals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

from engine.ranking.decay import TimestampError, TimestampPolicy, checked_time
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import EVENT_TYPES, Event, Impression, Product, SearchQuery, epoch, utcnow
from webapp.services.co_occurrence import record_baskets
from webapp.services.feedback_trust import flag_if_implausible, shown_products
from webapp.services.recommendation_log import recommendation_errors, recommended_products
from webapp.services.search_log import await_searches
from webapp.services.signals import record_actions
from webapp.visitors import ensure_visitor_row

MAX_QUANTITY = 100


@dataclass(frozen=True)
class EventInput:
    type: str
    product_external_id: str
    search_id: int | None = None
    position: int | None = None
    quantity: int = 1
    ts: float | None = None  # when it happened, epoch seconds, as the client says
    recommendation_id: int | None = None  # the recommendation list it came from (instead of a search)


def _timestamp(value: object) -> float | None:
    """Epoch seconds from a number or an ISO 8601 string (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("ts must be epoch seconds or an ISO 8601 time")
    if isinstance(value, int | float):
        if isinstance(value, int) and abs(value) > 10**12:  # far beyond any policy, and past a float's range
            raise ValueError("ts must be epoch seconds or an ISO 8601 time")
        if not math.isfinite(value):
            raise ValueError("ts must be a finite number")
        return float(value)
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    raise ValueError("ts must be epoch seconds or an ISO 8601 time")


def _int_or_none(value: object, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return value


def parse_event(raw: object) -> EventInput:
    """Validate one event object's shape (not yet its references)."""
    if not isinstance(raw, dict):
        raise ValueError("event must be an object")
    unknown = set(raw) - {"type", "product_id", "search_id", "recommendation_id", "position", "quantity", "ts"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    if raw.get("type") not in EVENT_TYPES:
        raise ValueError(f"type must be one of {', '.join(EVENT_TYPES)}")
    product = raw.get("product_id")
    if not isinstance(product, str) or not 0 < len(product) <= 64 or not product.isprintable():
        raise ValueError("product_id must be a product's external id")
    if raw.get("search_id") is not None and raw.get("recommendation_id") is not None:
        raise ValueError("an event comes from a search or a recommendation list, not both")
    position = _int_or_none(raw.get("position"), "position", 1, 10_000)
    if position is not None and raw.get("search_id") is None and raw.get("recommendation_id") is None:
        raise ValueError("position needs the search_id or recommendation_id it was shown in")
    return EventInput(
        type=raw["type"],
        product_external_id=product,
        search_id=_int_or_none(raw.get("search_id"), "search_id", 1, 2**31 - 1),  # the column is a 32-bit integer
        position=position,
        quantity=_int_or_none(raw.get("quantity", 1), "quantity", 1, MAX_QUANTITY) or 1,
        ts=_timestamp(raw.get("ts")),
        recommendation_id=_int_or_none(raw.get("recommendation_id"), "recommendation_id", 1, 2**31 - 1),
    )


def _event_times(inputs: list[EventInput], now: float) -> tuple[list[float], list[dict]]:
    """Each event's time under the policy: clock skew clamped, the future and the far past refused."""
    config = current_app.config
    policy = TimestampPolicy(config["EVENT_MAX_FUTURE_SECONDS"], config["EVENT_MAX_AGE_DAYS"] * 86400)
    times, errors = [], []
    for index, event in enumerate(inputs):
        try:
            times.append(checked_time(event.ts, now, policy))
        except TimestampError as exc:
            errors.append({"index": index, "error": str(exc)})
    return times, errors


def _searches(ids: set[int]) -> dict[int, SearchQuery]:
    return {s.id: s for s in db.session.scalars(select(SearchQuery).where(SearchQuery.id.in_(ids)))} if ids else {}


def _resolve(inputs: list[EventInput], visitor_id: str) -> tuple[dict[str, Product], dict[int, str], list[dict]]:
    """Look up referenced products and searches: the products, each search's normalized query, and any errors."""
    ids = {e.product_external_id for e in inputs}
    products = {p.external_id: p for p in db.session.scalars(select(Product).where(Product.external_id.in_(ids)))}
    search_ids = {e.search_id for e in inputs if e.search_id is not None}
    searches = _searches(search_ids)
    if len(searches) < len(search_ids):  # answered, perhaps, but not stored yet (webapp.services.search_log)
        await_searches(search_ids - set(searches))
        searches = _searches(search_ids)
    shown: set[tuple] = set()
    if search_ids:
        impressions = db.session.scalars(select(Impression).where(Impression.search_id.in_(search_ids))).all()
        shown = {(i.search_id, i.product_id, i.position) for i in impressions}
        shown |= {(i.search_id, i.product_id, None) for i in impressions}
    # Without a search or a list, the product must be one this visitor was shown: on its page, in
    # a search's results (webapp.services.feedback_trust) or in a recommendation list.
    unattributed = {
        products[e.product_external_id].id
        for e in inputs
        if e.search_id is None and e.recommendation_id is None and e.product_external_id in products
    }
    shown_alone = shown_products(visitor_id, unattributed)
    shown_alone |= recommended_products(visitor_id, unattributed - shown_alone)
    errors = []
    for index, event in enumerate(inputs):
        product = products.get(event.product_external_id)
        if product is None:
            errors.append({"index": index, "error": f"unknown product {event.product_external_id!r}"})
            continue
        if event.search_id is None:
            # A recommendation list's events are checked by recommendation_errors.
            if event.recommendation_id is None and product.id not in shown_alone:
                errors.append({"index": index, "error": "product was not shown to this visitor (no search_id)"})
            continue
        search = searches.get(event.search_id)
        # Feedback counts only for a search this visitor made: nobody can forge others' clicks.
        if search is None or search.visitor_id != visitor_id:
            errors.append({"index": index, "error": f"unknown search {event.search_id}"})
        elif (search.id, product.id, event.position) not in shown:
            where = "at that position in" if event.position is not None else "in"
            errors.append({"index": index, "error": f"product was not shown {where} that search"})
    errors += recommendation_errors(
        (
            (index, e.recommendation_id, products[e.product_external_id].id, e.position)
            for index, e in enumerate(inputs)
            if e.recommendation_id is not None and e.product_external_id in products
        ),
        visitor_id,
    )
    return products, {sid: search.normalized for sid, search in searches.items()}, sorted(errors, key=_by_index)


def _by_index(error: dict) -> int:
    return error["index"]


def record_events(raw_events: object, visitor_id: str, max_batch: int, with_rows: tuple = ()) -> list[Event]:
    """Store a batch of events for a visitor; any bad event rejects the whole batch (InputError).

    `with_rows`: rows stored in the same transaction (the demo checkout's order), or not at all.
    """
    if not isinstance(raw_events, list) or not raw_events:
        raise InputError("events must be a non-empty list")
    if len(raw_events) > max_batch:
        raise InputError(f"at most {max_batch} events per batch")
    inputs, errors = [], []
    for index, raw in enumerate(raw_events):
        try:
            inputs.append(parse_event(raw))
        except ValueError as exc:
            errors.append({"index": index, "error": str(exc)})
    if errors:
        raise InputError("invalid events; nothing was stored", errors)
    received = utcnow()
    times, errors = _event_times(inputs, epoch(received))
    if errors:
        raise InputError("invalid events; nothing was stored", errors)
    products, queries, errors = _resolve(inputs, visitor_id)
    if errors:
        raise InputError("invalid events; nothing was stored", errors)
    try:
        ensure_visitor_row(visitor_id)
        flagged = flag_if_implausible(visitor_id, (e.type for e in inputs), received)
        if not flagged:
            # Before the new events join the session: it reads the visitor's stored ones as the window.
            record_baskets(
                visitor_id,
                [(products[e.product_external_id].id, e.type, at) for e, at in zip(inputs, times, strict=True)],
            )
        events = [
            Event(
                type=e.type,
                visitor_id=visitor_id,
                product_id=products[e.product_external_id].id,
                search_id=e.search_id,
                recommendation_id=e.recommendation_id,
                position=e.position if e.search_id or e.recommendation_id else None,
                quantity=e.quantity,
                value=(products[e.product_external_id].price or 0) * e.quantity if e.type == "purchase" else None,
                created_at=received,
                occurred_at=datetime.fromtimestamp(at, UTC).replace(tzinfo=None) if e.ts is not None else None,
                flagged=flagged,
            )
            for e, at in zip(inputs, times, strict=True)
        ]
        db.session.add_all([*events, *with_rows])
        # The counts commit with the events: a stored event is always counted, a refused or flagged one never.
        if not flagged:
            record_actions(
                (products[e.product_external_id].id, e.type, 1.0, at, queries.get(e.search_id, ""))
                for e, at in zip(inputs, times, strict=True)
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return events
