"""The admin's view of recommendations: each list's impressions, CTR and add-to-cart rate by day,
and an explain view of one product's lists (what chose each product, with its figures)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from engine.recommending.lists import Catalog, bought_together, similar
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Event, Product, RecommendationItem, RecommendationList, epoch, utcnow
from webapp.services.co_occurrence import co_counts
from webapp.services.search_index import get_searcher

MAX_DAYS = 90


@dataclass(frozen=True)
class ListStats:
    day: str  # YYYY-MM-DD, or "all" for the window's total
    name: str
    strategy: str
    lists: int
    impressions: int
    clicks: int
    carts: int
    purchases: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def cart_rate(self) -> float:
        return self.carts / self.impressions if self.impressions else 0.0


def parse_days(raw: str | None) -> int:
    if not raw:
        return 14
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:
        raise InputError(f"days must be a whole number from 1 to {MAX_DAYS}")
    return int(raw)


def strategy_stats(days: int) -> list[ListStats]:
    """Per day and list (name, strategy) over the last `days`: lists served, products shown, and events from them.

    The window's totals come first (day "all"), then the days, newest first.
    """
    since = utcnow() - timedelta(days=days)
    day = func.date(RecommendationList.created_at)
    key_columns = (day.label("day"), RecommendationList.name, RecommendationList.strategy)
    shown = db.session.execute(
        select(*key_columns, func.count(func.distinct(RecommendationList.id)), func.count(RecommendationItem.id))
        .join(RecommendationItem, RecommendationItem.recommendation_id == RecommendationList.id)
        .where(RecommendationList.created_at >= since)
        .group_by(*key_columns)
    ).all()
    acted = db.session.execute(
        select(*key_columns, Event.type, func.count(Event.id))
        .join(Event, Event.recommendation_id == RecommendationList.id)
        .where(RecommendationList.created_at >= since)
        .group_by(*key_columns, Event.type)
    ).all()
    events: dict[tuple, dict[str, int]] = defaultdict(dict)
    for d, name, strategy, kind, n in acted:
        events[(str(d), name, strategy)][kind] = n
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    rows = []
    for d, name, strategy, lists, impressions in shown:
        counts = events[(str(d), name, strategy)]
        values = [lists, impressions, counts.get("click", 0), counts.get("add_to_cart", 0), counts.get("purchase", 0)]
        rows.append(ListStats(str(d), name, strategy, *values))
        totals[(name, strategy)] = [a + b for a, b in zip(totals[(name, strategy)], values, strict=True)]
    overall = [ListStats("all", name, strategy, *values) for (name, strategy), values in sorted(totals.items())]
    return overall + sorted(rows, key=lambda r: (r.day, r.name), reverse=True)


@dataclass(frozen=True)
class ExplainedItem:
    position: int
    external_id: str
    title: str
    brand: str
    source: str
    score: float
    detail: str  # the figures behind the score, in words


def explain_product(external_id: str, limit: int = 8) -> tuple[Product, dict[str, list[ExplainedItem]]]:
    """The product page's lists for this product as served now (not logged), with each item's figures."""
    product = db.session.scalar(select(Product).where(Product.external_id == external_id))
    if product is None:
        raise InputError(f"unknown product {external_id!r}")
    searcher = get_searcher()
    bundle = searcher.bundle
    now = epoch(utcnow())
    catalog = Catalog(
        searcher.cards,
        searcher.board,
        bundle.vectors if bundle else None,
        now,
        current_app.config["RECOMMEND_PER_BRAND"],
    )
    counts = co_counts([product.id], now)
    cosines = {}
    if bundle is not None and product.id in bundle.vectors:
        _, matrix = bundle.vectors.lookup([product.id])
        cosines = bundle.vectors.scores(matrix[0], list(searcher.cards))
    lists = {
        "similar": similar(product.id, catalog.cards, catalog.vectors, catalog.board, now, limit, catalog.per_brand),
        "bought_together": bought_together(catalog, [product.id], counts, limit),
    }
    n_a = counts.baskets.get(product.id, 0.0)

    def detail(pid: int, source: str) -> str:
        if source == "bought_together":
            n_ab, n_b = counts.pairs.get(product.id, {}).get(pid, 0.0), counts.baskets.get(pid, 0.0)
            expected = n_a * n_b / counts.total if counts.total else 0.0
            return f"together {n_ab:.2f}, this {n_a:.2f}, that {n_b:.2f}, all {counts.total:.2f}, chance {expected:.2f}"
        if source == "similar":
            return f"cosine {cosines.get(pid, 0.0):.3f}"
        return "same category, by engagement (no vector or no history)"

    explained = {
        name: [
            ExplainedItem(
                i,
                searcher.cards[r.product_id].external_id,
                searcher.cards[r.product_id].title,
                searcher.cards[r.product_id].brand,
                r.source,
                r.score,
                detail(r.product_id, r.source),
            )
            for i, r in enumerate(items, start=1)
        ]
        for name, items in lists.items()
    }
    return product, explained
