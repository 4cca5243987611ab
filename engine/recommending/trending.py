"""Trending now: products whose recent engagement outruns their own longer-term rate, per top-level category.

The same short-vs-long decayed rates the signal board keeps for search's trending feature
(engine.ranking.decay.trend): a product selling as it always does scores 0, one picking up
scores above. A product with no recent engagement never trends, however it did before.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.ranking.board import SignalBoard
from engine.ranking.context import top_category
from engine.ranking.decay import trend
from engine.recommending.items import Recommended, diversified, engagement, pool_of
from engine.serving.cards import ProductCard

MIN_RECENT = 0.5  # engagement at the short half-life below this (half a click) is noise, not a trend


def trending_scores(
    cards: Mapping[int, ProductCard], board: SignalBoard, now: float, category: str = ""
) -> list[tuple[int, float]]:
    """(product id, trend) of recently engaged buyable products, most trending first."""
    ids, _ = pool_of(cards).where(category)
    if not len(ids):
        return []
    counts = engagement(board, ids.tolist(), now)
    recent = np.flatnonzero(counts[:, 0] >= MIN_RECENT)
    scored = [
        (int(ids[i]), trend(float(counts[i, 0]), float(counts[i, 1]), board.half_lives) + 1e-9 * float(counts[i, 0]))
        for i in recent
    ]
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def trending(
    cards: Mapping[int, ProductCard],
    board: SignalBoard,
    now: float,
    limit: int,
    category: str = "",
    per_brand: int = 2,
    exclude: set[int] | None = None,
) -> list[Recommended]:
    """Trending now (within one top-level category when given), diversified by brand."""
    return diversified(
        trending_scores(cards, board, now, category), cards, limit, per_brand, exclude or set(), source="trending"
    )


def trending_by_category(
    cards: Mapping[int, ProductCard], board: SignalBoard, now: float, limit: int, per_brand: int = 2
) -> dict[str, list[Recommended]]:
    """Top-level category -> its trending list; categories with nothing trending are left out."""
    categories = sorted({top_category(card.category) for card in cards.values() if card.category})
    out = {}
    for category in categories:
        found = trending(cards, board, now, limit, category, per_brand)
        if found:
            out[category] = found
    return out
