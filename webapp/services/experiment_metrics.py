"""An experiment's visitor-level data from the database, whole and as a daily cumulative series.

Who counts: every ExperimentAssignment of the experiment (the exposure), in the variant it
was assigned (intention to treat). What counts: searches served under one of the
experiment's variants at or after the visitor's exposure, and the click, add-to-cart and
purchase events that the same visitor made on those searches. Each row is dated by its own
UTC day; a search's "clicked" counts on the day of its first click. Three GROUP BY queries
(searches, events, first clicks) per visitor and day do the work in the database, no query
runs per visitor, and the rows come back as numpy columns that are summed day by day.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Date, Float, and_, case, cast, func, select

from engine.experiments.metrics import FIELDS, METRICS, MetricMoments, VisitorData, metric_moments, winsor_cap
from engine.experiments.report import ExperimentReport, VariantInput, analyse_experiment
from webapp.extensions import db
from webapp.models import Event, Experiment, ExperimentAssignment, ExperimentVariant, SearchQuery
from webapp.services.feedback_trust import trusted_events


@dataclass(frozen=True)
class ExperimentData:
    """Per-variant visitor arrays for the whole run, and cumulative per-metric moments per day."""

    experiment_id: int
    variants: list[VariantInput]  # key = ExperimentVariant.id
    visitors: dict[int, VisitorData]  # variant id -> visitors ordered by visitor id
    days: list[date]  # every UTC day from the first exposure to the last activity
    revenue_cap: float  # each visitor's revenue is winsorised at this (engine.experiments.metrics)
    looks: list[dict[Hashable, dict[str, MetricMoments]]]  # looks[i]: data through the end of days[i]


def _day(value: object) -> date:
    # SQLite hands back 'YYYY-MM-DD' text for date(); PostgreSQL a date.
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _qualifying_searches(experiment_id: int, variant_ids: list[int]):
    """Searches served under the experiment's variants to an assigned visitor since exposure."""
    return (
        select(
            SearchQuery.id.label("search_id"),
            ExperimentAssignment.visitor_id.label("visitor_id"),
            SearchQuery.created_at.label("created_at"),
            SearchQuery.result_count.label("result_count"),
            SearchQuery.latency_ms.label("latency_ms"),
        )
        .join(
            ExperimentAssignment,
            and_(
                ExperimentAssignment.visitor_id == SearchQuery.visitor_id,
                ExperimentAssignment.experiment_id == experiment_id,
            ),
        )
        .where(SearchQuery.variant_id.in_(variant_ids), SearchQuery.created_at >= ExperimentAssignment.exposed_at)
        .subquery("qualifying")
    )


@dataclass(frozen=True)
class _Block:
    """One grouped query's answer as columns: visitor row index, day ordinal, and field values."""

    visitor: NDArray[np.int64]
    day: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]


def _block(stmt, fields: tuple[str, ...], index: dict[str, int]) -> _Block:
    """Run a (visitor, day, *fields) grouped query and return its columns as arrays."""
    rows = db.session.execute(stmt).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * (2 + len(fields))
    return _Block(
        visitor=np.fromiter((index[v] for v in columns[0]), dtype=np.int64, count=len(rows)),
        day=np.fromiter((_day(d).toordinal() for d in columns[1]), dtype=np.int64, count=len(rows)),
        values={name: np.asarray(col, dtype=np.float64) for name, col in zip(fields, columns[2:], strict=True)},
    )


def _blocks(experiment_id: int, variant_ids: list[int], index: dict[str, int]) -> list[_Block]:
    """Per visitor and UTC day: search totals, event totals, and searches first clicked that day."""
    qs = _qualifying_searches(experiment_id, variant_ids)
    s_day = func.date(qs.c.created_at, type_=Date)
    searches = select(
        qs.c.visitor_id,
        s_day,
        func.count(),
        func.sum(case((qs.c.result_count == 0, 1), else_=0)),
        func.coalesce(func.sum(qs.c.latency_ms), 0.0),
    ).group_by(qs.c.visitor_id, s_day)

    e_day = func.date(Event.created_at, type_=Date)
    ranked = and_(Event.type == "click", Event.position.is_not(None), Event.position > 0)

    def count_of(kind: str):
        return func.sum(case((Event.type == kind, 1), else_=0))

    events = (
        select(
            qs.c.visitor_id,
            e_day,
            count_of("click"),
            func.sum(case((ranked, 1), else_=0)),
            func.sum(case((ranked, 1.0 / cast(Event.position, Float)), else_=0.0)),
            count_of("add_to_cart"),
            count_of("purchase"),
            func.sum(case((Event.type == "purchase", func.coalesce(Event.value, 0.0)), else_=0.0)),
        )
        .join(qs, Event.search_id == qs.c.search_id)
        # Only the searching visitor's own feedback on the search counts.
        .where(Event.visitor_id == qs.c.visitor_id, trusted_events())
        .group_by(qs.c.visitor_id, e_day)
    )
    first = (
        select(qs.c.visitor_id, func.min(Event.created_at).label("first_click"))
        .join(qs, Event.search_id == qs.c.search_id)
        .where(Event.type == "click", Event.visitor_id == qs.c.visitor_id, trusted_events())
        .group_by(qs.c.visitor_id, qs.c.search_id)
        .subquery("first_clicks")
    )
    f_day = func.date(first.c.first_click, type_=Date)
    clicked = select(first.c.visitor_id, f_day, func.count()).group_by(first.c.visitor_id, f_day)
    return [
        _block(searches, ("searches", "zero_result_searches", "latency_ms_sum"), index),
        _block(
            events, ("clicks", "ranked_clicks", "reciprocal_rank_sum", "add_to_carts", "purchases", "revenue"), index
        ),
        _block(clicked, ("clicked_searches",), index),
    ]


def load_experiment_data(experiment_id: int) -> ExperimentData:
    """Read an experiment's assignments, searches and events into per-variant arrays and daily looks."""
    variant_rows = db.session.scalars(
        select(ExperimentVariant).where(ExperimentVariant.experiment_id == experiment_id).order_by(ExperimentVariant.id)
    ).all()
    variants = [VariantInput(v.id, v.name, v.is_control, v.traffic_share) for v in variant_rows]
    assignments = db.session.execute(
        select(ExperimentAssignment.visitor_id, ExperimentAssignment.variant_id, ExperimentAssignment.exposed_at)
        .where(ExperimentAssignment.experiment_id == experiment_id)
        .order_by(ExperimentAssignment.variant_id, ExperimentAssignment.visitor_id)
    ).all()
    ids = [a.visitor_id for a in assignments]
    index = {visitor: i for i, visitor in enumerate(ids)}
    arm = np.array([a.variant_id for a in assignments], dtype=np.int64)
    exposed = np.array([a.exposed_at.date().toordinal() for a in assignments], dtype=np.int64)
    blocks = _blocks(experiment_id, [v.key for v in variants], index) if assignments else []

    all_days = np.concatenate([exposed] + [b.day for b in blocks])
    first = int(all_days.min()) if all_days.size else 0
    days = [date.fromordinal(d) for d in range(first, int(all_days.max()) + 1)] if all_days.size else []
    final = np.zeros(len(ids))
    for block in blocks:
        if "revenue" in block.values:
            np.add.at(final, block.visitor, block.values["revenue"])
    cap = winsor_cap([final])  # pooled over the variants: every variant is capped alike
    running = {name: np.zeros(len(ids)) for name in FIELDS}
    looks: list[dict[Hashable, dict[str, MetricMoments]]] = []
    for today in range(first, first + len(days)):
        for block in blocks:
            rows = block.day == today
            for name, values in block.values.items():
                np.add.at(running[name], block.visitor[rows], values[rows])
        look: dict[Hashable, dict[str, MetricMoments]] = {}
        for v in variants:
            mask = (arm == v.key) & (exposed <= today)
            columns = {name: running[name][mask] for name in FIELDS}
            columns["revenue"] = np.minimum(columns["revenue"], cap)
            data = VisitorData.from_columns(columns)
            look[v.key] = {name: metric_moments(data, name) for name in METRICS}
        looks.append(look)
    running["revenue"] = np.minimum(running["revenue"], cap)
    visitors = {
        v.key: VisitorData.from_columns(
            {name: running[name][arm == v.key] for name in FIELDS},
            visitor_ids=[visitor for visitor, a in zip(ids, arm, strict=True) if a == v.key],
        )
        for v in variants
    }
    return ExperimentData(experiment_id, variants, visitors, days, cap, looks)


def experiment_report(experiment: Experiment, data: ExperimentData | None = None) -> ExperimentReport:
    """The experiment's analysis with its own primary metric, alpha and sequential setting."""
    data = data or load_experiment_data(experiment.id)
    return analyse_experiment(
        data.variants,
        data.looks or [{}],
        primary_metric=experiment.primary_metric,
        alpha=experiment.alpha,
        sequential=experiment.sequential,
    )
