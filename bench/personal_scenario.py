"""Personalised vs non-personal stage-2 ranking for visitors with a consistent brand preference.

Visitors search several times per session; most prefer one brand and search queries for
which that brand has something to offer, the rest search the same way with no preference.
"Something to offer" is, by default, a product judged Substitute or better among the
query's stage-2 candidates (brands = "relevant"); brands = "any" takes any product of the
brand among them, relevant or not (most are not: the visitor then mostly meets their
brand in products they would not want anyway). A context ranker is fitted on
warm-up pages logged with session profiles; then two arms serve the same sessions with
that ranker, each on its own copy of the warm-up's signal board: with the visitor's
profile (engine.ranking.profile.build_profile of their clicks, carts and purchases so far
in that arm, and of what that arm showed them, as the web reads it from impressions) and
without (profile None, the cold-start ranking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.shift_world import ACTIONS, T0, Arm, Taste, World, react
from engine.ranking.context import top_category
from engine.ranking.profile import Exposure, Interaction, ProfileItem, ShopperProfile, build_profile
from engine.ranking.stage import CONTEXT_POOL

VISITORS = 3  # salt of the visitors' random streams
PLACEHOLDER_BRANDS = frozenset({"unknown", "generic", "none", "n/a"})  # catalog fillers, not brands
RELEVANT_GAIN = 0.1  # relative gain of an ESCI Substitute
MAX_SESSION = 1000  # a page's log key is visitor * MAX_SESSION + search number
PROFILE_SEARCHES = 10  # the web reads the impressions of a visitor's last 10 searches


@dataclass(frozen=True)
class PersonalSettings:
    searches: int = 6000  # warm-up and evaluation together
    warmup_share: float = 0.4
    sessions_per_hour: float = 120.0
    session_searches: tuple[int, int] = (3, 6)  # inclusive
    search_gap: float = 90.0  # mean seconds between a session's searches
    loyal_share: float = 0.75  # visitors with a brand preference; the rest have none
    brand_lift: float = 3.0
    min_brand_queries: int = 3
    brands: str = "relevant"  # or "any": which of the brand's candidates count as it being there
    page_size: int = 24
    seed: int = 1


@dataclass(frozen=True)
class Session:
    visitor: int
    brand: str  # "" no preference
    qids: tuple[str, ...]
    times: tuple[float, ...]


@dataclass
class PersonalResult:
    fit_metrics: dict
    weights: dict[str, float]
    clicks: dict[str, np.ndarray]  # arm -> per search, in (visitor, search number) order
    purchases: dict[str, np.ndarray]
    loyal: np.ndarray
    session: np.ndarray
    with_profile: np.ndarray  # the personalised arm had a profile for this search
    brands: int


def brand_queries(world: World, minimum: int, relevant_only: bool) -> dict[str, list[str]]:
    """Lowercased brand -> query ids whose stage-2 candidate pool holds one of its products (relevant ones)."""
    seen: dict[str, set[str]] = {}
    sim = world.simulator
    for query in sim.queries:
        hits, _, _ = world.searcher.retrieve(query.text)
        for pid, _ in hits[:CONTEXT_POOL]:
            card = world.searcher.cards[pid]
            brand = card.brand.lower()
            if not brand or brand in PLACEHOLDER_BRANDS:
                continue
            if not relevant_only or sim.relative_gain(query.qid, card.external_id) >= RELEVANT_GAIN:
                seen.setdefault(brand, set()).add(query.qid)
    return {brand: sorted(qids) for brand, qids in sorted(seen.items()) if len(qids) >= minimum}


def sessions(
    brands: dict[str, list[str]], settings: PersonalSettings, start: float, count: int, first: int
) -> list[Session]:
    """`count` sessions from visitor number `first` on, arriving after `start`."""
    rng = np.random.default_rng([settings.seed, VISITORS, first])
    names = list(brands)
    out, clock = [], start
    low, high = settings.session_searches
    for visitor in range(first, first + count):
        clock += rng.exponential(3600.0 / settings.sessions_per_hour)
        brand = names[int(rng.integers(len(names)))]  # sets the query mix; a preference only if loyal
        # Distinct queries: a repeated query would reward re-finding the products clicked a minute ago.
        length = min(int(rng.integers(low, high + 1)), len(brands[brand]))
        qids = tuple(brands[brand][int(k)] for k in rng.permutation(len(brands[brand]))[:length])
        times = tuple(float(t) for t in clock + np.cumsum(rng.exponential(settings.search_gap, size=length)))
        loyal = rng.random() < settings.loyal_share
        out.append(Session(visitor, brand if loyal else "", qids, times))
    return out


def profile_of(
    world: World, interactions: list[Interaction], exposures: list[Exposure], now: float
) -> ShopperProfile | None:
    """The visitor's session profile, as the web builds it (no product vectors in lexical mode)."""
    cards = world.searcher.cards
    pids = {i.product_id for i in interactions} | {e.product_id for e in exposures}
    items = {pid: ProfileItem(cards[pid].brand, top_category(cards[pid].category), cards[pid].price) for pid in pids}
    return build_profile(interactions, items, None, now, exposures=exposures)


def serve(world: World, arm: Arm, plan: list[Session], personal: bool, settings: PersonalSettings) -> np.ndarray:
    """Run the sessions through one arm in time order.

    Rows (clicks, purchases, loyal, visitor, search number, had a profile), sorted by visitor
    and search number so that every arm's rows line up.
    """
    texts = {q.qid: q.text for q in world.simulator.queries}
    order = sorted((t, s, j) for s, session in enumerate(plan) for j, t in enumerate(session.times))
    history: dict[int, list[Interaction]] = {}
    shown: dict[int, list[Exposure]] = {}
    rows = []
    for now, s, j in order:
        session = plan[s]
        seen = history.setdefault(session.visitor, [])
        pages = shown.setdefault(session.visitor, [])
        profile = (
            profile_of(world, seen, pages[-PROFILE_SEARCHES * settings.page_size :], now) if personal and seen else None
        )
        qid = session.qids[j]
        response = arm.search(texts[qid], now, profile)
        taste = Taste(brand=session.brand, brand_lift=settings.brand_lift)
        gains = react(world, qid, response.hits, taste, (settings.seed, VISITORS, session.visitor, j))
        arm.feed(session.visitor * MAX_SESSION + j, texts[qid], response, gains, now)
        for hit, gain in zip(response.hits, gains, strict=True):
            seen.extend(Interaction(action, hit.card.id, now) for action in ACTIONS[: int(gain)])
            pages.append(Exposure(hit.card.id, hit.position, now))
        rows.append(
            ((gains > 0).sum(), (gains == 3).sum(), bool(session.brand), session.visitor, j, profile is not None)
        )
    rows.sort(key=lambda r: (r[3], r[4]))
    return np.array(rows, dtype=np.float64)


def run_personal(world: World, settings: PersonalSettings, progress: bool = False) -> PersonalResult:
    """Warm-up with profiles logged, one fit, then personalised vs non-personal on the same sessions."""
    if settings.brands not in ("relevant", "any"):
        raise ValueError("brands must be 'relevant' or 'any'")
    brands = brand_queries(world, settings.min_brand_queries, settings.brands == "relevant")
    if not brands:
        raise ValueError(f"no brand appears in the candidates of {settings.min_brand_queries} queries")
    total = max(2, round(settings.searches / (sum(settings.session_searches) / 2)))
    warm_count = max(1, round(settings.warmup_share * total))
    warm = sessions(brands, settings, T0, warm_count, 0)
    warm_arm = Arm.over(world, "warm-up", staged=True, page_size=settings.page_size)
    serve(world, warm_arm, warm, True, settings)
    end = max(warm[-1].times)
    fit = warm_arm.refit(end, len(warm_arm.pages))
    if progress:
        print(f"   personal: {len(warm_arm.pages)} warm-up searches logged and fitted", flush=True)
    plan = sessions(brands, settings, end + 60.0, total - warm_count, warm_count)
    results = {}
    for name, personal in (("personalised", True), ("non-personal", False)):
        arm = Arm.over(world, name, staged=True, page_size=settings.page_size)
        arm.inherit(warm_arm)  # the same past and ranker, then its own traffic
        results[name] = serve(world, arm, plan, personal, settings)
    first = results["personalised"]
    return PersonalResult(
        fit_metrics=fit.metrics,
        weights=fit.ranker.weights if fit.ranker is not None else {},
        clicks={name: rows[:, 0] for name, rows in results.items()},
        purchases={name: rows[:, 1] for name, rows in results.items()},
        loyal=first[:, 2].astype(bool),
        session=first[:, 3].astype(int),
        with_profile=first[:, 5].astype(bool),
        brands=len({s.brand for s in plan if s.brand}),
    )
