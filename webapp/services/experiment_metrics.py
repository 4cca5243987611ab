"""An experiment's visitor-level data from the database, whole and as a daily cumulative series.

Who counts: every ExperimentAssignment of the experiment (the exposure), in the variant it
was assigned (intention to treat). What counts: searches served under one of the
experiment's variants at or after the visitor's exposure, and the click, add-to-cart and
purchase events that the same visitor made on those searches. Each row is dated by its own
UTC day; a search's "clicked" counts on the day of its first click. Three GROUP BY queries
(searches, events, first clicks) per visitor and day do the work in the database; no query
runs per visitor.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sqlalchemy import Date, Float, and_, case, cast, func, select

from engine.experiments.metrics import FIELDS, METRICS, MetricMoments, VisitorData, metric_moments
from engine.experiments.report import ExperimentReport, VariantInput, analyse_experiment
from webapp.extensions import db
from webapp.models import Event, Experiment, ExperimentAssignment, ExperimentVariant, SearchQuery


@dataclass(frozen=True)
class ExperimentData:
    """Per-variant visitor arrays for the whole run, and cumulative per-metric moments per day."""

    experiment_id: int
    variants: list[VariantInput]  # key = ExperimentVariant.id
    visitors: dict[int, VisitorData]  # variant id -> visitors ordered by visitor id
    days: list[date]  # every UTC day from the first exposure to the last activity
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


def _increments(experiment_id: int, variant_ids: list[int]) -> list[tuple[str, date, str, float]]:
    """(visitor id, day, field, amount) rows from three grouped queries."""
    qs = _qualifying_searches(experiment_id, variant_ids)
    rows: list[tuple[str, date, str, float]] = []
    s_day = func.date(qs.c.created_at, type_=Date)
    search_rows = db.session.execute(
        select(
            qs.c.visitor_id, s_day, func.count(),
            func.sum(case((qs.c.result_count == 0, 1), else_=0)), func.sum(qs.c.latency_ms),
        ).group_by(qs.c.visitor_id, s_day)
    )
    for visitor, day, searches, zero, latency in search_rows:
        rows += [(visitor, _day(day), "searches", searches), (visitor, _day(day), "zero_result_searches", zero),
                 (visitor, _day(day), "latency_ms_sum", latency or 0.0)]

    e_day = func.date(Event.created_at, type_=Date)
    ranked = and_(Event.type == "click", Event.position.is_not(None), Event.position > 0)
    event_rows = db.session.execute(
        select(
            qs.c.visitor_id, e_day, Event.type, func.count(),
            func.sum(case((ranked, 1), else_=0)),
            func.sum(case((ranked, 1.0 / cast(Event.position, Float)), else_=0.0)),
            func.sum(func.coalesce(Event.value, 0.0)),
        )
        .join(qs, Event.search_id == qs.c.search_id)
        .where(Event.visitor_id == qs.c.visitor_id, Event.type.in_(("click", "add_to_cart", "purchase")))
        .group_by(qs.c.visitor_id, e_day, Event.type)
    )
    for visitor, day, kind, count, ranked_count, rr_sum, value in event_rows:
        day = _day(day)
        if kind == "click":
            rows += [(visitor, day, "clicks", count), (visitor, day, "ranked_clicks", ranked_count),
                     (visitor, day, "reciprocal_rank_sum", rr_sum or 0.0)]
        elif kind == "add_to_cart":
            rows.append((visitor, day, "add_to_carts", count))
        else:
            rows += [(visitor, day, "purchases", count), (visitor, day, "revenue", value or 0.0)]

    first = (
        select(qs.c.visitor_id, func.min(Event.created_at).label("first_click"))
        .join(qs, Event.search_id == qs.c.search_id)
        .where(Event.type == "click", Event.visitor_id == qs.c.visitor_id)
        .group_by(qs.c.visitor_id, qs.c.search_id)
        .subquery("first_clicks")
    )
    f_day = func.date(first.c.first_click, type_=Date)
    for visitor, day, count in db.session.execute(
        select(first.c.visitor_id, f_day, func.count()).group_by(first.c.visitor_id, f_day)
    ):
        rows.append((visitor, _day(day), "clicked_searches", count))
    return rows


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
    increments = _increments(experiment_id, [v.key for v in variants]) if assignments else []

    exposure_days = [a.exposed_at.date() for a in assignments]
    all_days = exposure_days + [row[1] for row in increments]
    days = []
    if all_days:
        first, last = min(all_days), max(all_days)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    day_index = {d: i for i, d in enumerate(days)}
    exposed = np.array([day_index[d] for d in exposure_days], dtype=np.int64)
    by_day: dict[int, list[tuple[int, str, float]]] = defaultdict(list)
    for visitor, day, name, amount in increments:
        by_day[day_index[day]].append((index[visitor], name, float(amount)))

    running = {name: np.zeros(len(ids)) for name in FIELDS}
    looks: list[dict[Hashable, dict[str, MetricMoments]]] = []
    for i in range(len(days)):
        for row, name, amount in by_day.get(i, ()):
            running[name][row] += amount
        look: dict[Hashable, dict[str, MetricMoments]] = {}
        for v in variants:
            mask = (arm == v.key) & (exposed <= i)
            data = VisitorData.from_columns({name: running[name][mask] for name in FIELDS})
            look[v.key] = {name: metric_moments(data, name) for name in METRICS}
        looks.append(look)
    visitors = {
        v.key: VisitorData.from_columns(
            {name: running[name][arm == v.key] for name in FIELDS},
            visitor_ids=[visitor for visitor, a in zip(ids, arm, strict=True) if a == v.key],
        )
        for v in variants
    }
    return ExperimentData(experiment_id, variants, visitors, days, looks)


def experiment_report(experiment: Experiment, data: ExperimentData | None = None) -> ExperimentReport:
    """The experiment's analysis with its own primary metric, alpha and sequential setting."""
    data = data or load_experiment_data(experiment.id)
    return analyse_experiment(
        data.variants, data.looks or [{}], primary_metric=experiment.primary_metric, alpha=experiment.alpha,
        sequential=experiment.sequential,
    )

