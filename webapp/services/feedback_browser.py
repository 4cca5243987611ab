"""The feedback browser's use case: recent events, filtered, a page at a time, with names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from webapp.extensions import db
from webapp.models import EVENT_TYPES, Event, Product, SearchQuery
from webapp.services.catalog_admin import like_pattern
from webapp.services.search_params import normalize_query

PER_PAGE = 50


@dataclass(frozen=True)
class EventFilters:
    type: str = ""
    visitor: str = ""  # a visitor id or its first characters
    product: str = ""  # a product's external id
    query: str = ""  # text contained in the (normalized) query that led to the event

    @classmethod
    def from_args(cls, args: MultiDict) -> EventFilters:
        """Filters from a query string; an unknown type is ignored rather than refused."""
        kind = args.get("type", "").strip()
        return cls(
            type=kind if kind in EVENT_TYPES else "",
            visitor=args.get("visitor", "").strip()[:36],
            product=args.get("product", "").strip()[:64],
            query=normalize_query(args.get("query", ""))[:200],
        )

    def as_args(self) -> dict:
        """The non-empty filters, for links that keep them."""
        return {k: v for k, v in vars(self).items() if v}


@dataclass(frozen=True)
class EventRow:
    id: int
    type: str
    created_at: datetime
    visitor_id: str | None
    external_id: str
    title: str
    product_id: int
    search_id: int | None
    query: str | None
    position: int | None
    quantity: int
    value: float | None


@dataclass
class EventPage:
    pagination: Pagination
    rows: list[EventRow]


def _statement(filters: EventFilters):
    stmt = select(Event)
    if filters.type:
        stmt = stmt.where(Event.type == filters.type)
    if filters.visitor:
        stmt = stmt.where(Event.visitor_id.like(like_pattern(filters.visitor, prefix=True), escape="\\"))
    if filters.product:
        stmt = stmt.where(Event.product_id.in_(select(Product.id).where(Product.external_id == filters.product)))
    if filters.query:
        matching = select(SearchQuery.id).where(SearchQuery.normalized.like(like_pattern(filters.query), escape="\\"))
        stmt = stmt.where(Event.search_id.in_(matching))
    return stmt.order_by(Event.created_at.desc(), Event.id.desc())


def list_events(filters: EventFilters, page: int = 1, per_page: int = PER_PAGE) -> EventPage:
    """One page of events, newest first, each with its product's and query's names."""
    pagination = db.paginate(_statement(filters), page=page, per_page=per_page, error_out=False, count=True)
    events: list[Event] = list(pagination.items)
    product_ids = {e.product_id for e in events}
    search_ids = {e.search_id for e in events if e.search_id is not None}
    products = {
        row.id: (row.external_id, row.title)
        for row in db.session.execute(
            select(Product.id, Product.external_id, Product.title).where(Product.id.in_(product_ids))
        )
    }
    queries = dict(
        db.session.execute(select(SearchQuery.id, SearchQuery.text).where(SearchQuery.id.in_(search_ids))).all()
        if search_ids
        else []
    )
    rows = [
        EventRow(
            id=e.id,
            type=e.type,
            created_at=e.created_at,
            visitor_id=e.visitor_id,
            external_id=products.get(e.product_id, ("?", ""))[0],
            title=products.get(e.product_id, ("?", ""))[1],
            product_id=e.product_id,
            search_id=e.search_id,
            query=queries.get(e.search_id),
            position=e.position,
            quantity=e.quantity,
            value=e.value,
        )
        for e in events
    ]
    return EventPage(pagination, rows)
