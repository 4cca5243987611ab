"""The pieces of the simulated time-aware ranking bench: the world, the shoppers, the arms, the lift.

Shoppers follow engine.evaluation.simulator's position-based model (examination (1/k)^eta,
click probability from the judged gain), plus a taste that the scenario sets: products
that became popular, or a brand the visitor loves. Every random draw is keyed by
(search, position) for examination and (search, product) for clicks, carts and purchases,
so two arms that show the same product to the same search draw the same outcome for it
(common random numbers): the arms differ only where their rankings differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.catalog.readers import read_catalog
from engine.catalog.records import ProductRecord
from engine.evaluation.judgments import DEMO_DIR, read_esci_judgments, read_esci_queries
from engine.evaluation.simulator import ShopperModel, Simulator
from engine.ranking.context_ranker import ContextFit, LoggedPage, fit_context_ranker
from engine.ranking.profile import ShopperProfile
from engine.ranking.stage import SearchContext
from engine.serving.bundle import ServingBundle
from engine.serving.lexical import Filters, LexicalResult
from engine.serving.searcher import Hit, ProductCard, Searcher, SearchRequest, SearchResponse
from engine.training.dataset import normalize_query

T0 = 1_700_000_000.0  # the simulated clock's start (epoch seconds)
DEMO_CATALOG = DEMO_DIR / "esci_us_ecommerce_shrunk.ndjson.zip"
ACTIONS = ("click", "add_to_cart", "purchase")  # a gain of g means the first g of these happened
_M64 = (1 << 64) - 1
EXAMINE, CLICK, CART, BUY = 1, 2, 3, 4


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def uniform(*keys: int) -> float:
    """A uniform draw in [0, 1) fixed by its integer keys."""
    x = 0
    for key in keys:
        x = _mix(x ^ (key & _M64))
    return (x >> 11) / float(1 << 53)


class FrozenCatalogSearcher(Searcher):
    """A Searcher over a catalog that does not change during the run, sharing another's indexes.

    Stage 1 of a query is then the same at every search and in every arm, so it is computed
    once (exactly what the index would return again); stage 2 runs at every search.
    """

    def __init__(self, base: Searcher, stage1: dict) -> None:
        super().__init__(base.candidates)
        self.lexical, self.cards = base.lexical, base.cards
        self._stage1 = stage1

    def retrieve(
        self,
        text: str,
        filters: Filters | None = None,
        limit: int | None = None,
        mode: str | None = None,
        bundle: ServingBundle | None = None,
    ) -> tuple[list[tuple[int, float]], LexicalResult, str]:
        if (filters is not None and not filters.is_empty()) or limit or mode or bundle:
            return super().retrieve(text, filters, limit, mode, bundle)
        if text not in self._stage1:
            self._stage1[text] = super().retrieve(text)
        hits, result, ranker = self._stage1[text]
        return list(hits), result, ranker


@dataclass
class World:
    """The catalog indexed once (every arm's stage 1 reads it) and the judged queries shoppers search."""

    searcher: Searcher
    simulator: Simulator  # queries with judgments, the shopper model, judged gains
    stage1: dict = field(default_factory=dict)  # query text -> stage-1 result, shared by the arms


def card_of(product_id: int, record: ProductRecord) -> ProductCard:
    return ProductCard(
        id=product_id,
        external_id=record.external_id,
        title=record.title,
        brand=record.brand,
        price=record.price,
        rating=record.rating,
        rating_count=record.rating_count,
        category=record.category_path,
        bullet_points=record.bullet_points,
        description=record.description,
    )


def build_world(cards: list[ProductCard], simulator: Simulator) -> World:
    searcher = Searcher()
    searcher.apply_changes(cards, [])
    return World(searcher, simulator)


def demo_world(model: ShopperModel | None = None) -> World:
    """The demo catalog (6,764 products) and its 150 judged queries, lexical retrieval (no model needed)."""
    records = [line.record for line in read_catalog(DEMO_CATALOG) if line.record is not None]
    cards = [card_of(i, record) for i, record in enumerate(records, start=1)]
    return build_world(cards, Simulator(read_esci_queries(), read_esci_judgments(), model))


@dataclass(frozen=True)
class Taste:
    """What draws this shopper beyond judged relevance."""

    hot: frozenset[int] = frozenset()  # product ids that became popular
    hot_cart_factor: float = 2.0  # ... and their add-to-cart rate over a best-gain product's
    brand: str = ""  # lowercased brand the visitor prefers ("" none)
    brand_lift: float = 1.0  # click and add-to-cart probabilities of that brand's products, times this


def react(world: World, qid: str, hits: list[Hit], taste: Taste, keys: tuple[int, ...]) -> np.ndarray:
    """Gains per shown hit: 0 nothing, 1 click, 2 add to cart, 3 purchase."""
    model = world.simulator.model
    gains = np.zeros(len(hits), dtype=np.float32)
    for row, hit in enumerate(hits):
        if uniform(*keys, EXAMINE, hit.position) >= model.examination(hit.position):
            continue
        pid = hit.card.id
        gain = world.simulator.relative_gain(qid, hit.card.external_id)
        click, cart = model.click_probability(gain), model.cart_max * math.sqrt(gain)
        if pid in taste.hot:
            click, cart = model.click_max, min(1.0, taste.hot_cart_factor * model.cart_max)
        elif taste.brand and hit.card.brand.lower() == taste.brand:
            click, cart = min(0.95, taste.brand_lift * click), min(1.0, taste.brand_lift * cart)
        if uniform(*keys, CLICK, pid) >= click:
            continue
        gains[row] = 1
        if uniform(*keys, CART, pid) < cart:
            gains[row] = 3 if uniform(*keys, BUY, pid) < model.purchase_given_cart else 2
    return gains


@dataclass
class Arm:
    """One ranking policy with its own signal board, logged pages and fitted context ranker."""

    name: str
    searcher: Searcher
    staged: bool  # False: stage 1 only (no context); True: stage 2 with the fitted ranker, if any
    page_size: int = 24
    pages: list[LoggedPage] = field(default_factory=list)
    fits: list[tuple[float, ContextFit]] = field(default_factory=list)
    signals: list[tuple[int, str, float, str]] = field(default_factory=list)  # what went on the board

    @classmethod
    def over(cls, world: World, name: str, staged: bool, page_size: int) -> Arm:
        """An arm on its own Searcher (board, ranker) that shares the world's indexes and stage-1 results."""
        return cls(name, FrozenCatalogSearcher(world.searcher, world.stage1), staged, page_size)

    def search(self, text: str, now: float, profile: ShopperProfile | None = None) -> SearchResponse:
        context = SearchContext(now=now, query_key=normalize_query(text), profile=profile) if self.staged else None
        return self.searcher.search(SearchRequest(text=text, page_size=self.page_size), context=context)

    def feed(self, key: int, text: str, response: SearchResponse, gains: np.ndarray, now: float) -> None:
        """Count the page's impressions and actions on the board and log the page (as the shop does)."""
        query = normalize_query(text)
        added = []
        for hit, gain in zip(response.hits, gains, strict=True):
            added.append((hit.card.id, "impression", now, ""))  # impressions count per product only
            added.extend((hit.card.id, action, now, query) for action in ACTIONS[: int(gain)])
        for pid, signal, at, on_query in added:
            self.searcher.board.add(pid, signal, at, query=on_query)
        self.signals.extend(added)
        if response.context is not None and response.hits:
            features = np.stack([response.context.features[h.card.id] for h in response.hits])
            positions = np.array([h.position for h in response.hits])
            self.pages.append(LoggedPage(key, features, gains, positions))

    def inherit(self, other: Arm) -> None:
        """Start from another arm's past: its signals replayed onto this board, its ranker."""
        for pid, signal, at, on_query in other.signals:
            self.searcher.board.add(pid, signal, at, query=on_query)
        self.signals.extend(other.signals)
        self.searcher.context_ranker = other.searcher.context_ranker

    def refit(self, now: float, max_pages: int) -> ContextFit:
        """Fit on the newest pages; a refused fit leaves the serving ranker as it was (as in production)."""
        fit = fit_context_ranker(self.pages[-max_pages:])
        if fit.ranker is not None:
            self.searcher.context_ranker = fit.ranker
        self.fits.append((now, fit))
        return fit


@dataclass(frozen=True)
class Lift:
    treated: float  # rate per search of the treated arm
    control: float
    lift: float  # treated / control - 1
    low: float  # 95% bootstrap interval of the lift
    high: float
    searches: int


def lift(treated: np.ndarray, control: np.ndarray, blocks: np.ndarray, seed: int, resamples: int = 2000) -> Lift:
    """Relative lift of per-search rates, paired, with a block bootstrap (blocks: runs of dependent searches)."""
    if len(treated) == 0 or control.sum() == 0:
        return Lift(float(treated.mean()) if len(treated) else 0.0, 0.0, math.nan, math.nan, math.nan, len(treated))
    _, inverse = np.unique(blocks, return_inverse=True)
    a = np.bincount(inverse, weights=treated)
    b = np.bincount(inverse, weights=control)
    picks = np.random.default_rng(seed).integers(len(a), size=(resamples, len(a)))
    ratios = a[picks].sum(axis=1) / np.maximum(b[picks].sum(axis=1), 1e-12) - 1.0
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Lift(
        float(treated.mean()),
        float(control.mean()),
        float(treated.sum() / control.sum() - 1.0),
        float(low),
        float(high),
        len(treated),
    )
