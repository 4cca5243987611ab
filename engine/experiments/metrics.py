"""Visitor-level experiment data and the metric definitions computed from it.

The visitor is the randomisation unit, so every metric is built from per-visitor totals:
a ratio metric (clicks per search) is sum(numerator) / sum(denominator) over visitors,
and its variance comes from the delta method on those per-visitor pairs (see stats.py),
never from treating each search as an independent trial. A mean metric (revenue per
visitor) is a ratio whose denominator is 1 for every visitor, so one code path serves both.

Revenue is heavy-tailed: one visitor's large order can swing a variant's mean by more than
any ranking change would. As GrowthBook and Algolia do, each visitor's revenue is winsorised
at a per-experiment cap (the REVENUE_CAP_QUANTILE of the buyers' revenue, pooled over the
variants so every variant is capped alike) before the metric is computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

REVENUE_CAP_QUANTILE = 0.99  # of the visitors with revenue, pooled over an experiment's variants
MIN_CAPPED_VALUES = 100  # buyers needed before a 99th percentile says anything beyond "the largest"

FIELDS = (
    "searches",  # searches served under the variant since exposure
    "clicks",  # click events on those searches
    "clicked_searches",  # searches with at least one click
    "ranked_clicks",  # clicks whose result position is known (the MRR denominator)
    "reciprocal_rank_sum",  # sum of 1/position over ranked clicks
    "add_to_carts",
    "purchases",  # purchase events (order lines)
    "revenue",  # sum of purchase event values
    "zero_result_searches",
    "latency_ms_sum",
)


@dataclass(frozen=True)
class VisitorData:
    """Per-visitor totals for one variant: element i of every array belongs to visitor i."""

    searches: NDArray[np.float64]
    clicks: NDArray[np.float64]
    clicked_searches: NDArray[np.float64]
    ranked_clicks: NDArray[np.float64]
    reciprocal_rank_sum: NDArray[np.float64]
    add_to_carts: NDArray[np.float64]
    purchases: NDArray[np.float64]
    revenue: NDArray[np.float64]
    zero_result_searches: NDArray[np.float64]
    latency_ms_sum: NDArray[np.float64]
    visitor_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        sizes = set()
        for name in FIELDS:
            array = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            object.__setattr__(self, name, array)
            sizes.add(array.size)
        if len(sizes) > 1:
            raise ValueError(f"visitor arrays differ in length: {sorted(sizes)}")
        if self.visitor_ids and len(self.visitor_ids) != len(self):
            raise ValueError("visitor_ids must name every visitor")

    def __len__(self) -> int:
        return int(self.searches.size)

    @classmethod
    def from_columns(cls, columns: Mapping[str, ArrayLike], visitor_ids: Sequence[str] = ()) -> VisitorData:
        """Build from a mapping of field name to array; missing fields are zeros."""
        unknown = set(columns) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        size = len(visitor_ids) if visitor_ids else (len(next(iter(columns.values()))) if columns else 0)
        values = {
            name: np.asarray(columns[name], dtype=np.float64) if name in columns else np.zeros(size) for name in FIELDS
        }
        return cls(**values, visitor_ids=tuple(visitor_ids))

    @classmethod
    def empty(cls) -> VisitorData:
        """No visitors."""
        return cls.from_columns({})

    def column(self, name: str) -> NDArray[np.float64]:
        """One field's per-visitor array."""
        if name not in FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def select(self, mask: NDArray[np.bool_]) -> VisitorData:
        """The visitors where mask is true, in order."""
        ids = tuple(v for v, keep in zip(self.visitor_ids, mask, strict=True) if keep) if self.visitor_ids else ()
        return VisitorData(**{name: self.column(name)[mask] for name in FIELDS}, visitor_ids=ids)

    def totals(self) -> dict[str, float]:
        """Each field summed over visitors."""
        return {name: float(self.column(name).sum()) for name in FIELDS}


@dataclass(frozen=True)
class MetricDef:
    """A metric as sum(numerator) / sum(denominator) over visitors; denominator None means per visitor."""

    name: str
    label: str
    numerator: str
    denominator: str | None
    higher_is_better: bool
    unit: str  # "share" (of searches, 0-1), "per_search" (a count per search, may exceed 1), "currency", "ms", "score"

    @property
    def kind(self) -> str:
        return "mean" if self.denominator is None else "ratio"


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        # Names are stored on experiments; labels say what each number is (a count per search is no rate).
        MetricDef("click_through_rate", "Clicks per search", "clicks", "searches", True, "per_search"),
        MetricDef(
            "clicked_search_rate", "Searches with a click (share)", "clicked_searches", "searches", True, "share"
        ),
        MetricDef("add_to_cart_rate", "Add-to-carts per search", "add_to_carts", "searches", True, "per_search"),
        MetricDef("purchase_rate", "Purchases per search", "purchases", "searches", True, "per_search"),
        MetricDef("revenue_per_visitor", "Revenue per visitor (winsorised)", "revenue", None, True, "currency"),
        MetricDef(
            "mean_reciprocal_rank",
            "Mean reciprocal rank of clicks",
            "reciprocal_rank_sum",
            "ranked_clicks",
            True,
            "score",
        ),
        MetricDef(
            "zero_result_rate", "Searches with no result (share)", "zero_result_searches", "searches", False, "share"
        ),
        MetricDef("mean_latency_ms", "Mean latency (ms per search)", "latency_ms_sum", "searches", False, "ms"),
    )
}


@dataclass(frozen=True)
class MetricMoments:
    """Sufficient statistics of the per-visitor pairs (x = denominator, y = numerator).

    Every field may be a numpy array of any shape, so many simulated experiments or many
    days are analysed in one vectorised call.
    """

    n: ArrayLike
    sx: ArrayLike
    sy: ArrayLike
    sxx: ArrayLike
    syy: ArrayLike
    sxy: ArrayLike

    @classmethod
    def from_pairs(cls, x: ArrayLike | None, y: ArrayLike) -> MetricMoments:
        """Moments of per-visitor (x, y); x None means x = 1 for every visitor (a mean metric)."""
        y = np.asarray(y, dtype=np.float64)
        x = np.ones_like(y) if x is None else np.asarray(x, dtype=np.float64)
        # einsum rather than a BLAS dot: no thread pool to wake, which costs milliseconds on a busy host.
        return cls(
            n=float(y.size),
            sx=float(x.sum()),
            sy=float(y.sum()),
            sxx=float(np.einsum("i,i->", x, x)),
            syy=float(np.einsum("i,i->", y, y)),
            sxy=float(np.einsum("i,i->", x, y)),
        )

    def to_dict(self) -> dict[str, float]:
        """Plain floats, for JSON snapshots (scalar moments only)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> MetricMoments:
        """Inverse of to_dict."""
        return cls(**{f.name: float(values[f.name]) for f in fields(cls)})


def metric_moments(data: VisitorData, metric: MetricDef | str) -> MetricMoments:
    """The moments one metric needs, from a variant's visitor arrays."""
    metric = METRICS[metric] if isinstance(metric, str) else metric
    x = None if metric.denominator is None else data.column(metric.denominator)
    return MetricMoments.from_pairs(x, data.column(metric.numerator))


def all_moments(data: VisitorData, metrics: Sequence[str] | None = None) -> dict[str, MetricMoments]:
    """Moments of every (or the named) metric for one variant."""
    return {name: metric_moments(data, name) for name in (metrics or METRICS)}


def winsor_cap(columns: Sequence[ArrayLike], quantile: float = REVENUE_CAP_QUANTILE) -> float:
    """The cap for a per-visitor column pooled over variants: its quantile among the positive values;
    infinity (nothing capped) below MIN_CAPPED_VALUES of them, where that quantile is the maximum."""
    pooled = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1) for c in columns] or [np.zeros(0)])
    positive = pooled[pooled > 0]
    return float(np.quantile(positive, quantile)) if positive.size >= MIN_CAPPED_VALUES else float("inf")


def capped(data: VisitorData, field: str, cap: float) -> VisitorData:
    """The same visitors with one field winsorised at cap."""
    values = {name: data.column(name) for name in FIELDS}
    values[field] = np.minimum(values[field], cap)
    return VisitorData(**values, visitor_ids=data.visitor_ids)
