"""The lists a page asks for, each falling back so it always answers (cold start, no model version)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.ranking.board import SignalBoard
from engine.ranking.context import top_category
from engine.ranking.profile import ShopperProfile
from engine.recommending.co_occurrence import CoCounts
from engine.recommending.items import Recommended, bestsellers, diversified
from engine.recommending.similar import DEPTH, similar
from engine.recommending.trending import trending, trending_scores
from engine.serving.cards import ProductCard
from engine.serving.vectors import VectorIndex

PERSONAL_SHARE = 2  # "for you" interleaves this many personal picks per trending one
CATEGORY_WEIGHT = 0.3  # a category's share of the visitor's engagement, added to the cosine
BRAND_WEIGHT = 0.2


@dataclass(frozen=True)
class Catalog:
    """What the lists read: the serving catalog, its signals, and the active version's vectors (if any)."""

    cards: Mapping[int, ProductCard]
    board: SignalBoard
    vectors: VectorIndex | None
    now: float
    per_brand: int = 2


def bought_together(
    catalog: Catalog, anchors: Sequence[int], counts: CoCounts, limit: int, exclude: set[int] | None = None
) -> list[Recommended]:
    """Products bought with the anchors more than chance predicts; topped up with similar products."""
    skip = set(anchors) | (exclude or set())
    found = diversified(counts.scores(anchors), catalog.cards, limit, catalog.per_brand, skip, source="bought_together")
    if len(found) < limit and anchors:  # cold start: too little history for this product
        taken = skip | {r.product_id for r in found}
        found += similar(
            anchors[0],
            catalog.cards,
            catalog.vectors,
            catalog.board,
            catalog.now,
            limit - len(found),
            catalog.per_brand,
            taken,
        )
    return found


def _personal(catalog: Catalog, profile: ShopperProfile, engaged: set[int], limit: int) -> list[Recommended]:
    """Near the profile's mean embedding, nudged toward its categories and brands; without vectors,
    the bestsellers of its favourite categories."""
    cards = catalog.cards
    if profile.vector is not None and catalog.vectors is not None:
        neighbours = catalog.vectors.search(np.asarray(profile.vector, dtype=np.float32), limit * DEPTH + len(engaged))
        ranked = []
        for pid, cosine in neighbours:
            card = cards.get(pid)
            if card is None:
                continue
            score = cosine + CATEGORY_WEIGHT * profile.categories.get(top_category(card.category), 0.0)
            ranked.append((pid, score + BRAND_WEIGHT * profile.brands.get(card.brand.lower(), 0.0)))
        ranked.sort(key=lambda item: -item[1])
    else:
        ranked = []
        for category, share in sorted(profile.categories.items(), key=lambda item: -item[1]):
            top = itertools.islice(bestsellers(cards, catalog.board, catalog.now, category), limit * DEPTH)
            ranked += [(pid, share) for pid, _ in top]
    return diversified(ranked, cards, limit, catalog.per_brand, engaged, source="for_you")


def recommended_for_you(
    catalog: Catalog, profile: ShopperProfile | None, engaged: set[int], limit: int
) -> list[Recommended]:
    """The visitor's profile blended with trending; trending (then bestsellers) for a new visitor."""
    popular = trending(catalog.cards, catalog.board, catalog.now, limit, per_brand=catalog.per_brand, exclude=engaged)
    if len(popular) < limit:
        taken = engaged | {r.product_id for r in popular}
        popular += diversified(
            bestsellers(catalog.cards, catalog.board, catalog.now),
            catalog.cards,
            limit - len(popular),
            catalog.per_brand,
            taken,
            source="bestsellers",
        )
    if profile is None:
        return popular
    personal = _personal(catalog, profile, engaged, limit)
    out: list[Recommended] = []
    seen: set[int] = set()
    mine, theirs = iter(personal), iter(popular)
    while len(out) < limit:
        batch = [next(mine, None) for _ in range(PERSONAL_SHARE)] + [next(theirs, None)]
        if all(item is None for item in batch):
            break
        for item in batch:
            if item is not None and item.product_id not in seen and len(out) < limit:
                seen.add(item.product_id)
                out.append(item)
    return out


def trending_now(catalog: Catalog, limit: int, category: str = "") -> list[Recommended]:
    """Trending (in one top-level category when given), topped up with that category's bestsellers."""
    found = trending(catalog.cards, catalog.board, catalog.now, limit, category, catalog.per_brand)
    if len(found) < limit:
        taken = {r.product_id for r in found}
        found += diversified(
            bestsellers(catalog.cards, catalog.board, catalog.now, category),
            catalog.cards,
            limit - len(found),
            catalog.per_brand,
            taken,
            source="bestsellers",
        )
    return found


__all__ = ["Catalog", "bought_together", "recommended_for_you", "similar", "trending_now", "trending_scores"]
