"""Recommendation lists for a page (product, cart, home), answered from this worker's serving state.

The lists read what search reads (webapp.services.search_index.get_searcher): the catalog
cards, the signal board and the active model version's vectors; the visitor's session
profile is the one search uses (webapp.services.context_ranking), and bought-together reads
the co-occurrence counts in the database. Each list served is logged with its positions
(webapp.services.recommendation_log), one transaction per page.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from engine.recommending.items import Recommended
from engine.recommending.lists import Catalog, bought_together, recommended_for_you, similar, trending_now
from engine.serving.cards import ProductCard
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import RECOMMENDATION_CONTEXTS, Product, epoch, utcnow
from webapp.services.co_occurrence import co_counts
from webapp.services.context_ranking import recent_interactions, visitor_profile
from webapp.services.recommendation_log import log_list
from webapp.services.search_index import get_searcher
from webapp.visitors import ensure_visitor_row

MAX_LIMIT = 24
MAX_ANCHORS = 20  # a cart holds at most this many lines (webapp.storefront.cart)
STRATEGY = "blended"  # the one served now; an experiment may compare others under other names


@dataclass(frozen=True)
class ServedList:
    """One list as the page shows it: its logged id, name, strategy and products in order."""

    recommendation_id: int
    name: str
    strategy: str
    items: list[tuple[ProductCard, Recommended]]


def parse_limit(raw: str | None, default: int = 8) -> int:
    """The list length asked for: a whole number from 1 to MAX_LIMIT (InputError otherwise)."""
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InputError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_context(raw: str | None) -> str:
    if raw not in RECOMMENDATION_CONTEXTS:
        raise InputError(f"context must be one of {', '.join(RECOMMENDATION_CONTEXTS)}")
    return raw


def _product_ids(external_ids: Sequence[str]) -> list[int]:
    """Internal ids of active products, in the order named; an unknown one is an InputError."""
    if not external_ids:
        return []
    found = dict(
        db.session.execute(
            select(Product.external_id, Product.id).where(
                Product.external_id.in_(list(external_ids)), Product.is_active
            )
        ).all()
    )
    missing = [e for e in external_ids if e not in found]
    if missing:
        raise InputError(f"unknown product {missing[0]!r}")
    return [found[e] for e in dict.fromkeys(external_ids)]


def recommend(
    context: str,
    product_external_ids: Sequence[str],
    limit: int,
    visitor_id: str | None,
    no_feedback: bool = False,
) -> list[ServedList]:
    """The lists of one page, logged; product: similar and bought together (one product named),
    cart: bought together with the named products, home: for you and trending."""
    if context == "product" and len(product_external_ids) != 1:
        raise InputError("context=product needs one product_id")
    if len(product_external_ids) > MAX_ANCHORS:
        raise InputError(f"at most {MAX_ANCHORS} product ids")
    anchors = _product_ids(product_external_ids)
    started = time.perf_counter()
    searcher = get_searcher()
    bundle = searcher.bundle
    moment = utcnow()
    now = epoch(moment)
    catalog = Catalog(
        searcher.cards,
        searcher.board,
        bundle.vectors if bundle is not None else None,
        now,
        current_app.config["RECOMMEND_PER_BRAND"],
    )
    lists: list[tuple[str, list[Recommended]]] = []
    if context == "product":
        lists.append(
            (
                "similar",
                similar(anchors[0], catalog.cards, catalog.vectors, catalog.board, now, limit, catalog.per_brand),
            )
        )
        taken = {r.product_id for r in lists[0][1]}
        lists.append(("bought_together", bought_together(catalog, anchors, co_counts(anchors, now), limit, taken)))
    elif context == "cart":
        if anchors:
            lists.append(("bought_together", bought_together(catalog, anchors, co_counts(anchors, now), limit)))
        else:
            lists.append(("trending", trending_now(catalog, limit)))
    else:
        profile = visitor_profile(visitor_id, searcher, bundle, moment, no_feedback)
        engaged: set[int] = set()
        if profile is not None and visitor_id:
            engaged = {i.product_id for i in recent_interactions(visitor_id, moment)[1]}
        mine = recommended_for_you(catalog, profile, engaged, limit)
        lists.append(("for_you", mine))
        lists.append(("trending", trending_now(catalog, limit)))
    elapsed_ms = (time.perf_counter() - started) * 1000
    return _logged(
        context, lists, anchors, visitor_id, bundle.version_id if bundle is not None else None, elapsed_ms, catalog
    )


def _logged(
    context: str,
    lists: list[tuple[str, list[Recommended]]],
    anchors: list[int],
    visitor_id: str | None,
    version_id: int | None,
    latency_ms: float,
    catalog: Catalog,
) -> list[ServedList]:
    """Log every list of the page in one transaction; the served lists with their ids."""
    try:
        if visitor_id:
            ensure_visitor_row(visitor_id)
        rows = [
            log_list(
                visitor_id, context, name, STRATEGY, items, anchors[0] if anchors else None, version_id, latency_ms
            )
            for name, items in lists
        ]
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return [
        ServedList(row.id, name, STRATEGY, [(catalog.cards[r.product_id], r) for r in items])
        for row, (name, items) in zip(rows, lists, strict=True)
    ]


def served_json(served: ServedList) -> dict:
    """A list as the API answers it (positions from 1, products by external id)."""
    return {
        "recommendation_id": served.recommendation_id,
        "list": served.name,
        "strategy": served.strategy,
        "results": [
            {
                "position": position,
                "product_id": card.external_id,
                "title": card.title,
                "brand": card.brand,
                "price": card.price,
                "rating": card.rating,
                "image_url": card.image_url,
                "source": item.source,
                "score": round(item.score, 4),
            }
            for position, (card, item) in enumerate(served.items, start=1)
        ],
    }
