"""What every recommendation list is made of, and which products may appear in one."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
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


@dataclass(frozen=True)
class Pool:
    """The buyable products of a catalog as arrays (id, top-level category, rating prior), built once a second.

    Every list that ranks the whole catalog (bestsellers, trending) starts from these: walking the
    cards per request cost more than the ranking itself.
    """

    ids: np.ndarray
    categories: np.ndarray
    rated: np.ndarray

    def where(self, category: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(ids, rating priors) of one top-level category, or of all."""
        if not category:
            return self.ids, self.rated
        mask = self.categories == category
        return self.ids[mask], self.rated[mask]


POOL_SECONDS = 1.0  # a price or catalog change reaches the whole-catalog lists within this
# id(cards) -> (built at, size, pool, the mapping itself: held so its id is never another's)
_pools: dict[int, tuple[float, int, Pool, Mapping[int, ProductCard]]] = {}


def pool_of(cards: Mapping[int, ProductCard]) -> Pool:
    """The cached Pool of this cards mapping (rebuilt after POOL_SECONDS or when its size changes)."""
    now = time.monotonic()
    held = _pools.get(id(cards))
    if held is not None and held[3] is cards and now - held[0] < POOL_SECONDS and held[1] == len(cards):
        return held[2]
    chosen = [card for card in list(cards.values()) if buyable(card)]
    pool = Pool(
        np.array([card.id for card in chosen], dtype=np.int64),
        np.array([top_category(card.category) for card in chosen], dtype=object),
        np.array([(card.rating or 0.0) * np.log1p(card.rating_count) for card in chosen]),
    )
    if len(_pools) > 8:  # a few catalogs per process at most (tests, benches); drop the rest
        _pools.clear()
    _pools[id(cards)] = (now, len(cards), pool, cards)
    return pool


def bestsellers(
    cards: Mapping[int, ProductCard], board: SignalBoard, now: float, category: str = ""
) -> Iterator[tuple[int, float]]:
    """Buyable products (of one top-level category when given) by long-horizon engagement, best first.

    Never empty for a non-empty catalog: products nobody engaged with follow, best rated first.
    Lazy: a list takes the first few, and building the whole catalog's pairs cost more than the sort.
    """
    ids, rated = pool_of(cards).where(category)
    if not len(ids):
        return iter(())
    long = engagement(board, ids.tolist(), now)[:, 1]
    order = np.lexsort((ids, -rated, -long))
    return ((int(ids[i]), float(long[i])) for i in order)
