"""A shopper's short-term profile from their recent session: what they looked at and bought.

Built per search from the visitor's recent interactions (the shop's own database holds
them, keyed by the anonymous visitor id). Recent and committed actions weigh more: a
purchase five minutes ago says more than a click an hour ago. No interactions, no profile:
a new visitor gets the non-personal ranking.

Given what the visitor was shown too (their recent searches' impressions), brand and
category affinity are measured against exposure: how much more the visitor engaged with a
brand than their own engagement rate predicts from how often, and how high, it was shown.
Counting clicked brands alone mostly measures what the ranking put first: a shopper who
prefers a brand still clicks mostly other brands' relevant products near the top, and one
click on a brand shown first says little, while a click on a brand shown tenth (or none on
a brand shown first, twice) says more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from engine.ranking.decay import decay

ACTION_WEIGHTS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
PROFILE_HALF_LIFE = 1800.0  # a session's interest fades over half an hour
BAND_MARGIN = 1.25  # the price band reaches this factor beyond the cheapest and dearest item
# Excess engagement is clipped to this range, in ACTION_WEIGHTS units: from a few searches' worth
# of passing a brand by, to one full purchase (click, cart, buy: 6) beyond what was expected.
AFFINITY_RANGE = (-3.0, 6.0)


@dataclass(frozen=True)
class Interaction:
    action: str  # click, add_to_cart or purchase
    product_id: int
    at: float  # epoch seconds


class Exposure(NamedTuple):
    """A product shown to the visitor at a 1-based position of a results list.

    A named tuple, not a dataclass: the web reads a few hundred per search, and a frozen
    dataclass's constructor made building them cost more than reading them.
    """

    product_id: int
    position: int
    at: float  # epoch seconds


def examination(position: int) -> float:
    """The chance a shopper looks at a position: 1/k, the position-based model the bench simulates."""
    return 1.0 / max(position, 1)


@dataclass(frozen=True)
class ShopperProfile:
    vector: np.ndarray | None  # unit vector, or None without product vectors
    brands: dict[str, float] = field(default_factory=dict)  # lowercased brand -> share of weight
    categories: dict[str, float] = field(default_factory=dict)  # top-level category -> share
    price_band: tuple[float, float] | None = None
    interactions: int = 0
    # Engagement against exposure (see affinity()); None when built without exposures: use the shares.
    brand_affinity: dict[str, float] | None = None
    category_affinity: dict[str, float] | None = None


@dataclass(frozen=True)
class ProfileItem:
    """What the profile needs to know of a product."""

    brand: str
    category: str  # top-level category, lowercased
    price: float | None


def _shares(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {key: value / total for key, value in weights.items()} if total > 0 else {}


def build_profile(
    interactions: Sequence[Interaction],
    items: Mapping[int, ProfileItem],
    lookup_vectors: Callable[[list[int]], tuple[list[int], np.ndarray]] | None,
    now: float,
    half_life: float = PROFILE_HALF_LIFE,
    exposures: Sequence[Exposure] | None = None,
    examine: Callable[[int], float] = examination,
) -> ShopperProfile | None:
    """The profile of these interactions, or None when none of them names a known product.

    With `exposures` (what the visitor was shown; `items` should cover those products too),
    brand and category affinity are measured against them as well.
    """
    weights: dict[int, float] = defaultdict(float)
    for event in interactions:
        if event.product_id in items and event.action in ACTION_WEIGHTS:
            weights[event.product_id] += decay(ACTION_WEIGHTS[event.action], now - event.at, half_life)
    if not weights:
        return None
    brands: dict[str, float] = defaultdict(float)
    categories: dict[str, float] = defaultdict(float)
    prices = []
    for pid, weight in weights.items():
        item = items[pid]
        if item.brand:
            brands[item.brand.lower()] += weight
        if item.category:
            categories[item.category] += weight
        if item.price is not None:
            prices.append(item.price)
    band = (min(prices) / BAND_MARGIN, max(prices) * BAND_MARGIN) if prices else None
    brand_affinity = category_affinity = None
    if exposures is not None:
        seen = _exposure(weights, exposures, items, now, half_life, examine)
        brand_affinity = affinity(brands, _by(seen, items, lambda item: item.brand.lower()))
        category_affinity = affinity(categories, _by(seen, items, lambda item: item.category))
    return ShopperProfile(
        vector=_mean_vector(weights, lookup_vectors),
        brands=_shares(brands),
        categories=_shares(categories),
        price_band=band,
        interactions=len(interactions),
        brand_affinity=brand_affinity,
        category_affinity=category_affinity,
    )


def affinity(
    engaged: Mapping[str, float], exposure: Mapping[str, float], bounds: tuple[float, float] = AFFINITY_RANGE
) -> dict[str, float]:
    """Per key, engaged - r * exposure, clipped; r = the visitor's engagement per examination over all keys.

    0: engaged as much as expected from how often and how high it was shown, or never shown
    (such a key stays out, and reads as 0); above 0, more; below, the visitor passed it by.
    This excess (observed minus expected) is the score statistic for "this brand's products are
    engaged more than the visitor's other results": a click is evidence wherever it was, while
    passing a brand by says something only where it was likely to be looked at. A ratio
    (observed / expected) would instead make one click on a brand shown 20th the strongest
    preference of the session.
    """
    total = sum(exposure.values())
    if total <= 0 or not engaged:
        return {}
    rate = sum(engaged.values()) / total
    low, high = bounds
    return {key: min(high, max(low, engaged.get(key, 0.0) - rate * seen)) for key, seen in exposure.items()}


def _exposure(
    weights: Mapping[int, float],
    exposures: Sequence[Exposure],
    items: Mapping[int, ProfileItem],
    now: float,
    half_life: float,
    examine: Callable[[int], float],
) -> dict[int, float]:
    """Product -> decayed examination chance over its showings; an engaged product was looked at, shown or not."""
    seen: dict[int, float] = defaultdict(float)
    for shown in exposures:
        if shown.product_id in items:
            seen[shown.product_id] += decay(examine(shown.position), now - shown.at, half_life)
    for pid in weights:
        # Engaged but not among the impressions read (a product page, an older search): examined once, lately.
        seen.setdefault(pid, 1.0)
    return seen


def _by(
    seen: Mapping[int, float], items: Mapping[int, ProfileItem], key: Callable[[ProfileItem], str]
) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for pid, value in seen.items():
        name = key(items[pid])
        if name:
            out[name] += value
    return out


def _mean_vector(
    weights: Mapping[int, float], lookup: Callable[[list[int]], tuple[list[int], np.ndarray]] | None
) -> np.ndarray | None:
    if lookup is None:
        return None
    present, matrix = lookup(list(weights))
    if not present:
        return None
    mean = np.asarray([weights[pid] for pid in present], dtype=np.float32) @ matrix
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None
