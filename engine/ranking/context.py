"""Context features: what the moment and the shopper add to a candidate's relevance.

Stage 1 (engine.serving.hybrid) orders candidates by relevance to the words. Stage 2 looks
at the head of that list with signals that change by the minute (trending, what was bought
after this query, freshness, price drops, restocks) and with the shopper's session profile.
Every feature is 0 when there is nothing to say (a quiet product, a new visitor), so a cold
start ranks exactly as stage 1 does up to the relevance column's weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.ranking.board import ProductActivity, SignalBoard
from engine.ranking.decay import LN2, HalfLives
from engine.ranking.profile import ShopperProfile

CONTEXT_FEATURES = (
    "relevance",  # stage-1 rank, as 10 / (10 + rank): scale-free across retrieval modes
    "ctr",  # long-run engagement per impression, smoothed toward a prior
    "popularity_recent",  # engagement within the short half-life
    "trending",  # short-horizon rate against the long one
    "query_affinity",  # engagement after this very query
    "freshness",  # how new the product is
    "price_drop",  # a recent price cut, by its size
    "back_in_stock",  # recently restocked
    "profile_sim",  # cosine of the session profile's embedding with the product's
    "brand_affinity",  # the shopper's engagement with this brand beyond what its exposure predicts
    "category_affinity",  # ... with this top-level category
    "price_fit",  # the price sits in the profile's price band
)
PERSONAL_FEATURES = ("profile_sim", "brand_affinity", "category_affinity", "price_fit")
CTR_PRIOR_IMPRESSIONS = 20.0
CTR_PRIOR = 0.05
POPULARITY_SCALE = math.log1p(100.0)
QUERY_SCALE = math.log1p(20.0)
DAY = 86400.0


@dataclass(frozen=True)
class ContextSettings:
    """Time constants of the freshness signals and the exploration policy."""

    freshness_days: float = 30.0  # e-folding age of the freshness feature
    change_days: float = 7.0  # e-folding age of price-drop and restock features
    explore_days: float = 14.0  # new products get the exploration bonus for this long
    explore_impressions: float = 50.0  # ... halved after this many (long-horizon) impressions
    explore_bonus: float = 0.0  # the most a brand-new product is lifted, in score units (0: off)


@dataclass(frozen=True)
class ProductFacts:
    """What the catalog knows about a product's timeline (epoch seconds; None: never)."""

    created_at: float | None = None
    price_dropped_at: float | None = None
    price_drop: float = 0.0  # fraction of the old price taken off at the last cut
    restocked_at: float | None = None
    brand: str = ""
    category: str = ""
    price: float | None = None

    # (created_at, price_dropped_at, price_drop, restocked_at), NaN for never: context_matrix's
    # row, built once (a plain attribute: stage 2 reads a hundred of them per search).
    timeline: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        moments = (self.created_at, self.price_dropped_at, self.price_drop, self.restocked_at)
        object.__setattr__(self, "timeline", tuple(math.nan if v is None else float(v) for v in moments))


def engagement(activity: ProductActivity, horizon: int) -> float:
    """Clicks, carts and purchases at one horizon (0 short, 1 long), weighted by commitment."""
    return activity.click[horizon] + 2.0 * activity.add_to_cart[horizon] + 3.0 * activity.purchase[horizon]


def top_category(path: str) -> str:
    return path.split(">")[0].strip().lower() if path else ""


def exploration(facts: ProductFacts, activity: ProductActivity, now: float, settings: ContextSettings) -> float:
    """In [0, 1]: 1 for a brand-new product nobody has seen, falling with age and with exposure."""
    if facts.created_at is None or settings.explore_days <= 0:
        return 0.0
    age_share = 1.0 - max(now - facts.created_at, 0.0) / (settings.explore_days * DAY)
    if age_share <= 0:
        return 0.0
    return min(age_share, 1.0) / (1.0 + activity.impression[1] / settings.explore_impressions)


def _personal(facts: ProductFacts, sim: float, profile: ShopperProfile) -> tuple[float, float, float, float]:
    # Engagement against exposure where the profile has it; else the share of engagement.
    brands = profile.brands if profile.brand_affinity is None else profile.brand_affinity
    categories = profile.categories if profile.category_affinity is None else profile.category_affinity
    brand = brands.get(facts.brand.lower(), 0.0) if facts.brand else 0.0
    category = categories.get(top_category(facts.category), 0.0)
    fit = 0.0
    if profile.price_band is not None and facts.price is not None:
        low, high = profile.price_band
        fit = 1.0 if low <= facts.price <= high else 0.0
    return sim, brand, category, fit


# Columns of ProductFacts.timeline that are moments (the other, 2, is the price drop's size).
_STAMPS = [0, 1, 3]


# Weights of SIGNALS (impression, click, add_to_cart, purchase) in engagement().
_ENGAGEMENT = np.array([0.0, 1.0, 2.0, 3.0])


@dataclass(frozen=True, eq=False)  # compared by identity: it holds an array
class Candidates:
    """Stage 2's candidates and what the catalog knows of them: the part of its input that does not
    change with time or the shopper, so a repeated search's can be reused (engine.ranking.stage)."""

    ids: tuple[int, ...]
    facts: tuple[ProductFacts, ...]
    timeline: np.ndarray  # (n, 4): each one's ProductFacts.timeline

    @classmethod
    def of(cls, ids: Sequence[int], facts: Sequence[ProductFacts]) -> Candidates:
        timeline = np.array([f.timeline for f in facts], dtype=np.float64).reshape(len(ids), 4)
        timeline.flags.writeable = False  # shared by every search that reuses it
        return cls(tuple(ids), tuple(facts), timeline)


def context_matrix(
    ids: Sequence[int],
    query: str,
    board: SignalBoard,
    facts: Mapping[int, ProductFacts],
    now: float,
    settings: ContextSettings,
    profile: ShopperProfile | None = None,
    profile_sims: Mapping[int, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, len(CONTEXT_FEATURES)), exploration (n,)) for candidates in stage-1 order.

    The form for callers holding facts by id (the tests, a bench); a search prepares its
    Candidates once (engine.ranking.stage.stage_two_candidates) and calls context_rows.
    """
    blank = ProductFacts()
    candidates = Candidates.of(ids, [facts.get(pid, blank) for pid in ids])
    return context_rows(candidates, query, board, now, settings, profile, profile_sims)


def context_rows(
    candidates: Candidates,
    query: str,
    board: SignalBoard,
    now: float,
    settings: ContextSettings,
    profile: ShopperProfile | None = None,
    profile_sims: Mapping[int, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """context_matrix over prepared candidates.

    Column by column in numpy: the same arithmetic as engagement(), decay.trend() and
    exploration() (tests hold the two forms equal), a fifth of the per-row loop's cost.
    """
    ids, timeline = candidates.ids, candidates.timeline
    n = len(ids)
    lives: HalfLives = board.half_lives
    activity = board.activity_array(ids, now)  # (n, signals, horizons)
    engaged = _ENGAGEMENT @ activity  # (n, horizons)
    short, long = engaged[:, 0], engaged[:, 1]
    impressions = activity[:, 0, 1]
    prior = LN2 / lives.long  # trend()'s prior: one event per long half-life
    trending = np.log((short * LN2 / lives.short + prior) / (long * LN2 / lives.long + prior))
    # Seconds since creation, the last price cut and the last restock (a stamp in the future
    # counts as now; NaN, never, stays NaN through maximum and exp and reads as 0 below).
    ages = np.maximum(now - timeline[:, _STAMPS], 0.0)
    since = np.exp(ages / (-DAY * np.array([settings.freshness_days, settings.change_days, settings.change_days])))
    since[np.isnan(since)] = 0.0
    rows = np.zeros((n, len(CONTEXT_FEATURES)), dtype=np.float32)
    rows[:, 0] = 10.0 / (10.0 + np.arange(1, n + 1))
    rows[:, 1] = (long + CTR_PRIOR * CTR_PRIOR_IMPRESSIONS) / (impressions + CTR_PRIOR_IMPRESSIONS) - CTR_PRIOR
    rows[:, 2] = np.log1p(short) / POPULARITY_SCALE
    rows[:, 3] = np.clip(trending, -3.0, 3.0) / 3.0
    if query:
        after_query = (_ENGAGEMENT @ board.activity_array(ids, now, query)).sum(axis=1)  # both horizons
        rows[:, 4] = np.log1p(after_query) / QUERY_SCALE
    rows[:, 5] = since[:, 0]
    rows[:, 6] = timeline[:, 2] * since[:, 1]
    rows[:, 7] = since[:, 2]
    if profile is not None:
        sims = profile_sims or {}
        rows[:, 8:12] = [
            _personal(fact, sims.get(pid, 0.0), profile) for pid, fact in zip(ids, candidates.facts, strict=True)
        ]
    explore = np.zeros(n, dtype=np.float32)
    if settings.explore_days > 0:
        age_share = 1.0 - ages[:, 0] / (settings.explore_days * DAY)  # NaN for an unknown creation
        lifted = np.minimum(age_share, 1.0) / (1.0 + impressions / settings.explore_impressions)
        explore[:] = np.where(age_share > 0, lifted, 0.0)  # NaN > 0 is False
    return rows, explore
