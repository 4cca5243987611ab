"""Labelled training pairs from logged feedback, given as plain records (no database here).

Per impression (a product shown at a position for a search):
  - purchase or add-to-cart: strong positive (relevance grade `strong_grade`, purchase 1);
  - click: positive (grade `click_grade`);
  - not clicked: a negative when it was examined. "last_click": positions above the
    search's last click (the shopper scrolled past them); "propensity": every shown
    position up to max_position, counted with the unbiased IPS estimator below.
Clicks are weighted by 1 / propensity(position), clipped at `max_ips_weight` (Joachims et
al., WSDM 2017); with "propensity" negatives an unclicked impression counts 1 and a click
counts 1/p as positive and 1 - 1/p as negative, so the label of a pair is an unbiased
estimate of its attractiveness (Saito et al., WSDM 2020). Every impression is also
weighted by exp decay with the given half-life, so recent behaviour counts more.
Impressions of one (query, product) pair are pooled into one example.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

STRONG_EVENTS = ("purchase", "add_to_cart")
NEGATIVE_MODES = ("last_click", "propensity")


@dataclass(frozen=True)
class SearchRecord:
    search_id: int
    query: str
    created_at: datetime


@dataclass(frozen=True)
class ImpressionRecord:
    search_id: int
    product_id: int
    position: int
    # A query rule pinned or boosted it there (engine.merchandising.rules): the shopper's click
    # answers the shop's choice, not the ranking's, so neither the labels nor the click model read it.
    imposed: bool = False


@dataclass(frozen=True)
class EventRecord:
    type: str  # click, add_to_cart, purchase
    product_id: int
    search_id: int | None
    position: int | None
    created_at: datetime


@dataclass(frozen=True)
class ProductRecord:
    product_id: int
    text: str  # what the encoder embeds (engine.serving.product_text)
    category: str = ""  # "A > B > C" path; "" when unknown


@dataclass
class FeedbackLog:
    """Everything a training run reads from the shop's logs, as plain records."""

    searches: list[SearchRecord] = field(default_factory=list)
    impressions: list[ImpressionRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    products: list[ProductRecord] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetConfig:
    """How feedback becomes labels; the defaults are the ones the learning loop uses."""

    click_grade: float = 0.5
    strong_grade: float = 1.0
    negatives: str = "propensity"
    max_position: int = 24  # impressions deeper than this are ignored (one results page)
    max_ips_weight: float = 10.0  # clip of 1/propensity: bounds the variance of rare deep clicks
    half_life_days: float = 7.0  # <= 0 switches time decay off
    max_pair_weight: float = 20.0  # a pair seen very often should not dominate the batch
    category_depth: int = 2  # "Home & Kitchen > Furniture" is a label; deeper paths are too sparse
    min_category_products: int = 5

    def __post_init__(self) -> None:
        if self.negatives not in NEGATIVE_MODES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVE_MODES)}, got {self.negatives!r}")
        if self.max_ips_weight < 1 or self.max_position < 1:
            raise ValueError("max_ips_weight and max_position must be at least 1")


@dataclass(frozen=True)
class PairExample:
    """One (query, product) pair with its pooled labels and weights."""

    query: str
    product_id: int
    grade: float  # relevance in [0, 1]
    click: float  # estimated click-through when examined, in [0, 1]
    purchase: float  # estimated purchase / add-to-cart rate when examined, in [0, 1]
    weight: float  # decayed, capped amount of evidence behind the labels
    impressions: int


@dataclass
class TrainingSet:
    examples: list[PairExample]
    product_text: dict[int, str]
    categories: tuple[str, ...]
    product_category: dict[int, int]  # product id -> index into categories
    counts: Counter = field(default_factory=Counter)  # what was used and what was skipped, by reason

    @property
    def positives(self) -> int:
        return sum(1 for e in self.examples if e.grade > 0)

    def queries(self) -> set[str]:
        return {e.query for e in self.examples}


def normalize_query(text: str) -> str:
    """NFKC, lower case, single spaces (the same canonical form the web logs)."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def category_label(path: str, depth: int) -> str:
    """The first `depth` levels of a "A > B > C" category path ("" when there is none)."""
    parts = [p.strip() for p in path.split(">") if p.strip()]
    return " > ".join(parts[:depth])


def decay_weight(age_days: float, half_life_days: float) -> float:
    """0.5 ** (age / half-life); 1 when decay is off; future timestamps count as now."""
    if half_life_days <= 0:
        return 1.0
    return math.pow(0.5, max(age_days, 0.0) / half_life_days)


def _categories(products: Iterable[ProductRecord], config: DatasetConfig) -> tuple[tuple[str, ...], dict[int, int]]:
    labels = {p.product_id: category_label(p.category, config.category_depth) for p in products}
    sizes = Counter(label for label in labels.values() if label)
    names = tuple(sorted(name for name, n in sizes.items() if n >= config.min_category_products))
    index = {name: i for i, name in enumerate(names)}
    return names, {pid: index[label] for pid, label in labels.items() if label in index}


@dataclass
class _Pool:
    positive: float = 0.0
    negative: float = 0.0
    gain: float = 0.0
    strong: float = 0.0
    evidence: float = 0.0
    impressions: int = 0


def build_dataset(
    log: FeedbackLog,
    propensity: Callable[[int], float],
    now: datetime,
    config: DatasetConfig | None = None,
    exclude_queries: Iterable[str] = (),
) -> TrainingSet:
    """Pool the log into labelled pairs; rows naming unknown products or searches are skipped and counted.

    `propensity(position)` is relative examination (1 at the top); pass `lambda _: 1.0` for
    no position-bias correction. Queries in `exclude_queries` (validation and test queries)
    never reach training.
    """
    config = config or DatasetConfig()
    counts: Counter = Counter()
    products = {p.product_id: p for p in log.products}
    excluded = {normalize_query(q) for q in exclude_queries}
    searches = {}
    for s in log.searches:
        query = normalize_query(s.query)
        if not query:
            counts["skipped_searches_without_text"] += 1
        elif query in excluded:
            counts["held_out_searches"] += 1
        else:
            searches[s.search_id] = (query, s.created_at)
    known_ids = {s.search_id for s in log.searches}
    shown: dict[int, dict[int, int]] = defaultdict(dict)  # search -> product -> position
    for imp in log.impressions:
        if imp.search_id not in searches:
            counts[
                "skipped_impressions_unknown_search" if imp.search_id not in known_ids else "held_out_impressions"
            ] += 1
        elif imp.product_id not in products:
            counts["skipped_impressions_unknown_product"] += 1
        elif imp.imposed:
            counts["skipped_impressions_imposed"] += 1
        elif 1 <= imp.position <= config.max_position:
            shown[imp.search_id][imp.product_id] = imp.position
    clicked: dict[int, set[int]] = defaultdict(set)
    strong: dict[int, set[int]] = defaultdict(set)
    for event in log.events:
        if event.search_id is None:
            counts["skipped_events_without_search"] += 1
        elif event.search_id not in known_ids:
            counts["skipped_events_unknown_search"] += 1
        elif event.search_id not in searches:
            counts["held_out_events"] += 1
        elif event.product_id not in products:
            counts["skipped_events_unknown_product"] += 1
        elif event.product_id not in shown[event.search_id]:
            counts["skipped_events_not_shown"] += 1
        else:
            clicked[event.search_id].add(event.product_id)  # a purchase implies the click before it
            if event.type in STRONG_EVENTS:
                strong[event.search_id].add(event.product_id)
            counts[f"events_{event.type}"] += 1

    pools: dict[tuple[str, int], _Pool] = defaultdict(_Pool)
    for search_id, positions in shown.items():
        query, created_at = searches[search_id]
        decay = decay_weight((now - created_at).total_seconds() / 86400, config.half_life_days)
        last_click = max((positions[p] for p in clicked[search_id]), default=0)
        for product_id, position in positions.items():
            is_click = product_id in clicked[search_id]
            ips = min(1.0 / max(propensity(position), 1e-9), config.max_ips_weight)
            if config.negatives == "last_click":
                if not is_click and position >= last_click:
                    continue  # below the last click (or no click at all): maybe never seen
                pos_w, neg_w = (ips, 0.0) if is_click else (0.0, 1.0)
            else:
                pos_w, neg_w = (ips, 1.0 - ips) if is_click else (0.0, 1.0)
            grade = config.strong_grade if product_id in strong[search_id] else config.click_grade
            pool = pools[(query, product_id)]
            pool.positive += decay * pos_w
            pool.negative += decay * neg_w
            pool.gain += decay * pos_w * grade if is_click else 0.0
            pool.strong += decay * pos_w if product_id in strong[search_id] else 0.0
            pool.evidence += decay
            pool.impressions += 1
            counts["impressions_used"] += 1

    examples = []
    for (query, product_id), pool in pools.items():
        seen = pool.positive + pool.negative
        # IPS can push the estimate past 1 (or the negative weight below 0): a rate is in [0, 1].
        denominator = max(seen, pool.positive, 1e-9)
        examples.append(
            PairExample(
                query=query,
                product_id=product_id,
                grade=min(pool.gain / denominator, 1.0),
                click=min(pool.positive / denominator, 1.0),
                purchase=min(pool.strong / denominator, 1.0),
                weight=min(pool.evidence, config.max_pair_weight),
                impressions=pool.impressions,
            )
        )
    examples.sort(key=lambda e: (e.query, e.product_id))
    counts["pairs"] = len(examples)
    counts["positive_pairs"] = sum(1 for e in examples if e.grade > 0)
    names, product_category = _categories(log.products, config)
    return TrainingSet(
        examples=examples,
        product_text={p.product_id: p.text for p in log.products},
        categories=names,
        product_category=product_category,
        counts=counts,
    )


def click_rows(log: FeedbackLog, max_position: int) -> tuple[list[str], list[int], list[int], list[bool]]:
    """(query, product, position, clicked) per impression of a known search, for the click model."""
    queries = {s.search_id: normalize_query(s.query) for s in log.searches}
    clicked = {(e.search_id, e.product_id) for e in log.events if e.search_id is not None}
    rows: tuple[list, list, list, list] = ([], [], [], [])
    for imp in log.impressions:
        if imp.search_id in queries and not imp.imposed and 1 <= imp.position <= max_position:
            rows[0].append(queries[imp.search_id])
            rows[1].append(imp.product_id)
            rows[2].append(imp.position)
            rows[3].append((imp.search_id, imp.product_id) in clicked)
    return rows
