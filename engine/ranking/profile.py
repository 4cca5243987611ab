"""A shopper's short-term profile from their recent session: what they looked at and bought.

Built per search from the visitor's recent interactions (the shop's own database holds
them, keyed by the anonymous visitor id). Recent and committed actions weigh more: a
purchase five minutes ago says more than a click an hour ago. No interactions, no profile:
a new visitor gets the non-personal ranking.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.ranking.decay import decay

ACTION_WEIGHTS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
PROFILE_HALF_LIFE = 1800.0  # a session's interest fades over half an hour
BAND_MARGIN = 1.25  # the price band reaches this factor beyond the cheapest and dearest item


@dataclass(frozen=True)
class Interaction:
    action: str  # click, add_to_cart or purchase
    product_id: int
    at: float  # epoch seconds


@dataclass(frozen=True)
class ShopperProfile:
    vector: np.ndarray | None  # unit vector, or None without product vectors
    brands: dict[str, float] = field(default_factory=dict)  # lowercased brand -> share of weight
    categories: dict[str, float] = field(default_factory=dict)  # top-level category -> share
    price_band: tuple[float, float] | None = None
    interactions: int = 0


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
) -> ShopperProfile | None:
    """The profile of these interactions, or None when none of them names a known product."""
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
    return ShopperProfile(
        vector=_mean_vector(weights, lookup_vectors),
        brands=_shares(brands),
        categories=_shares(categories),
        price_band=band,
        interactions=len(interactions),
    )


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
