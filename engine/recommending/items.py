"""What every recommendation list is made of, and which products may appear in one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from engine.ranking.board import SIGNALS, SignalBoard
from engine.ranking.context import top_category
from engine.serving.cards import ProductCard

STRATEGIES = ("similar", "bought_together", "for_you", "trending", "bestsellers")
# How much each kind of engagement says about a product's appeal (the profile's weights).
ENGAGEMENT = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
_TITLE_NOISE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Recommended:
    """One product of a list: its score within the strategy that chose it, and that strategy."""

    product_id: int
    score: float
    source: str


def buyable(card: ProductCard | None) -> bool:
    """A product a shopper can buy now: held in the serving catalog (active) and priced."""
    return card is not None and card.price is not None and card.price > 0


def title_key(title: str) -> str:
    """A title folded to letters and digits: two cards with the same key are near-duplicates."""
    return _TITLE_NOISE.sub(" ", title.lower()).strip()


def diversified(
    ranked: Iterable[tuple[int, float]],
    cards: Mapping[int, ProductCard],
    limit: int,
    per_brand: int,
    exclude: set[int],
    exclude_titles: set[str] | None = None,
    source: str = "",
) -> list[Recommended]:
    """The first `limit` buyable products of `ranked`, at most `per_brand` of one brand, one per title."""
    titles = set(exclude_titles or ())
    brands: dict[str, int] = {}
    out: list[Recommended] = []
    for pid, score in ranked:
        card = cards.get(pid)
        if pid in exclude or not buyable(card):
            continue
        key = title_key(card.title)
        brand = card.brand.lower()
        if key in titles or (brand and brands.get(brand, 0) >= per_brand):
            continue
        titles.add(key)
        if brand:
            brands[brand] = brands.get(brand, 0) + 1
        out.append(Recommended(pid, float(score), source))
        if len(out) >= limit:
            break
    return out


def engagement(board: SignalBoard, product_ids: list[int], now: float) -> np.ndarray:
    """(n, 2): each product's engagement (ENGAGEMENT-weighted signals) at the short and long half-life."""
    if not product_ids:
        return np.zeros((0, 2))
    counts = board.activity_array(product_ids, now)  # (n, signals, 2)
    weights = np.array([ENGAGEMENT.get(name, 0.0) for name in SIGNALS])
    return np.einsum("nsk,s->nk", counts, weights)


def bestsellers(
    cards: Mapping[int, ProductCard], board: SignalBoard, now: float, category: str = ""
) -> list[tuple[int, float]]:
    """Buyable products (of one top-level category when given) by long-horizon engagement, best first.

    Never empty for a non-empty catalog: products nobody engaged with follow, best rated first.
    """
    pool = [
        pid
        for pid, card in cards.items()
        if buyable(card) and (not category or top_category(card.category) == category)
    ]
    if not pool:
        return []
    long = engagement(board, pool, now)[:, 1]
    rated = [(cards[pid].rating or 0.0) * np.log1p(cards[pid].rating_count) for pid in pool]
    order = sorted(range(len(pool)), key=lambda i: (-long[i], -rated[i], pool[i]))
    return [(pool[i], float(long[i])) for i in order]
