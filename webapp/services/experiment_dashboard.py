"""What an experiment's dashboard shows: the report's numbers formatted with their intervals,
the verdicts in words, the sample-ratio check, and chart specs for every metric over time.

Intervals for a treatment's difference are the ones its decision uses: the always-valid
confidence sequence when the experiment is sequential, else the fixed-horizon Welch interval.
The relative lift's interval is the log-ratio delta-method one for a fixed horizon; for a
sequential experiment it is the confidence sequence over the control's value, so the two
intervals on a row always agree with the p-value beside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.experiments.metrics import METRICS, MetricDef
from engine.experiments.report import ExperimentReport, TreatmentResult, VariantSummary
from engine.experiments.sequential import DEFAULT_TARGET_VISITORS
from engine.experiments.stats import Comparison, MetricEstimate, SrmResult
from webapp.extensions import db
from webapp.models import Experiment, ExperimentVariant, ModelVersion
from webapp.services.experiment_metrics import ExperimentData, experiment_report, load_experiment_data
from webapp.services.experiment_snapshots import snapshots_of
from webapp.services.experiments import variants_of
from webapp.services.serving_version import version_load_state

DASH = "–"
_SCALE = {"share": 100.0, "per_search": 1.0, "currency": 1.0, "ms": 1.0, "score": 1.0}
_Y_LABEL = {"share": "% of searches", "per_search": "per search", "currency": "per visitor", "ms": "ms", "score": "MRR"}


def _ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def fmt_value(value: float | None, unit: str) -> str:
    """A metric value in its unit: 12.34% (a share), 2.141 (per search), $1.20, 85.3 ms, 0.512."""
    if not _ok(value):
        return DASH
    if unit == "share":
        return f"{value * 100:.2f}%"
    if unit == "currency":
        return f"${value:,.2f}"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.3f}"


def fmt_diff(value: float | None, unit: str) -> str:
    """A signed difference in the metric's unit (percentage points for shares)."""
    if not _ok(value):
        return DASH
    if unit == "share":
        return f"{value * 100:+.2f} pp"
    if unit == "currency":
        return f"{'-' if value < 0 else '+'}${abs(value):,.2f}"
    if unit == "ms":
        return f"{value:+.1f} ms"
    return f"{value:+.3f}"


def fmt_pct(value: float | None) -> str:
    return f"{value * 100:+.1f}%" if _ok(value) else DASH


def fmt_interval(low: float | None, high: float | None, fmt: Callable[[float], str]) -> str:
    """[low, high]; an open end (a confidence sequence with no bound yet) shows as ∞."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return DASH
    left = fmt(low) if math.isfinite(low) else "−∞"
    right = fmt(high) if math.isfinite(high) else "∞"
    return f"[{left}, {right}]"


def fmt_p(p: float | None) -> str:
    if not _ok(p):
        return DASH
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


@dataclass(frozen=True)
class VariantLine:
    id: int
    name: str
    is_control: bool
    serves: str  # "v3 (rrf)" or "lexical"
    share: float
    observed_share: float | None
    visitors: int
    searches: int
    load_state: str  # in the worker that rendered the page


@dataclass(frozen=True)
class MetricRow:
    name: str
    is_control: bool
    value: str
    ci: str
    visitors: int
    diff: str = ""
    diff_ci: str = ""
    lift: str = ""
    lift_ci: str = ""
    p: str = ""
    finding: str = ""  # "better", "worse" or "" (not significant, or the control)


@dataclass(frozen=True)
class MetricTable:
    metric: MetricDef
    primary: bool
    rows: list[MetricRow]
    chart_id: str
    chart: dict


@dataclass(frozen=True)
class Dashboard:
    report: ExperimentReport
    variants: list[VariantLine]
    verdicts: list[tuple[str, TreatmentResult]]
    srm: SrmResult
    tables: list[MetricTable]
    ci_level: str  # of the differences: "95%", or "97.5%" with two treatments (Bonferroni)
    variant_ci_level: str  # of each variant's own value
    p_kind: str
    chart_source: str
    snapshots: int
    revenue_cap: str  # "$92.88", or "" when too few buyers to cap


def _serves(variant: ExperimentVariant) -> str:
    mode = (variant.ranking_config or {}).get("retrieval_mode")
    if variant.model_version_id is None:
        return "lexical"
    version = db.session.get(ModelVersion, variant.model_version_id)
    own = version.retrieval_mode if version is not None else "?"
    return f"v{variant.model_version_id} ({mode or own})"


def _treatment_row(summary: VariantSummary, c: Comparison, metric: MetricDef, sequential: bool) -> MetricRow:
    def value_fmt(v: float) -> str:
        return fmt_diff(v, metric.unit)

    low, high = c.decision_ci
    if sequential:
        base = c.control.value
        # A lift cannot fall below -100% (the metrics are not negative), so the lower end is cut there.
        scaled = (max(low / base, -1.0), high / base) if _ok(base) and base > 0 else (math.nan, math.nan)
        lift_ci = fmt_interval(*scaled, fmt_pct)
    else:
        lift_ci = fmt_interval(*c.relative_ci, fmt_pct)
    significant = _ok(c.decision_p) and c.decision_p < c.alpha
    better = (c.difference > 0) == metric.higher_is_better
    est = summary.metrics[metric.name]
    return MetricRow(
        name=summary.name,
        is_control=False,
        value=fmt_value(est.value, metric.unit),
        ci=_ci(est, metric.unit),
        visitors=est.visitors,
        diff=fmt_diff(c.difference, metric.unit),
        diff_ci=fmt_interval(low, high, value_fmt),
        lift=fmt_pct(c.relative),
        lift_ci=lift_ci,
        p=fmt_p(c.decision_p),
        finding=("better" if better else "worse") if significant else "",
    )


def _ci(est: MetricEstimate, unit: str) -> str:
    return fmt_interval(est.ci_low, est.ci_high, lambda v: fmt_value(v, unit))


def _chart(metric: MetricDef, names: list[str], labels: list[str], values: list[list[float | None]]) -> dict:
    scale = _SCALE[metric.unit]
    series = [
        {"label": name, "data": [round(v * scale, 6) if _ok(v) else None for v in column]}
        for name, column in zip(names, values, strict=True)
    ]
    return {"type": "line", "labels": labels, "yLabel": _Y_LABEL[metric.unit], "series": series}


def _charts(experiment: Experiment, report: ExperimentReport, data: ExperimentData) -> tuple[dict[str, dict], str, int]:
    """Chart specs per metric: from snapshots (plus now) when there are any, else per UTC day."""
    snapshots = snapshots_of(experiment.id)
    names = [v.name for v in report.variants]
    specs: dict[str, dict] = {}
    if snapshots:
        labels = [s.taken_at.strftime("%m-%d %H:%M") for s in snapshots] + ["now"]
        for name in report.variants[0].metrics:
            columns = []
            for v in report.variants:
                past = [
                    ((s.data or {}).get("variants", {}).get(str(v.key), {}).get("metrics", {}).get(name) or {}).get(
                        "value"
                    )
                    for s in snapshots
                ]
                columns.append([*past, v.metrics[name].value])
            specs[name] = _chart(METRICS[name], names, labels, columns)
        return specs, "snapshots", len(snapshots)
    labels = [d.isoformat() for d in data.days] or ["now"]
    for name in report.variants[0].metrics:
        columns = [[e.value for e in v.series[name]] for v in report.variants]
        specs[name] = _chart(METRICS[name], names, labels, columns)
    return specs, "days", 0


def build_dashboard(experiment: Experiment) -> Dashboard:
    """Everything the dashboard page renders, computed from the database now."""
    data = load_experiment_data(experiment.id)
    report = experiment_report(experiment, data)
    rows = {v.id: v for v in variants_of(experiment.id)}
    total = sum(v.visitors for v in report.variants)
    lines = []
    for summary in report.variants:
        row = rows[summary.key]
        state = "not needed" if row.model_version_id is None else version_load_state(row.model_version_id)
        lines.append(
            VariantLine(
                id=row.id,
                name=row.name,
                is_control=row.is_control,
                serves=_serves(row),
                share=row.traffic_share,
                observed_share=summary.visitors / total if total else None,
                visitors=summary.visitors,
                searches=int(summary.metrics["click_through_rate"].denominator),
                load_state=state,
            )
        )
    charts, source, count = _charts(experiment, report, data)
    by_key = {t.key: t for t in report.treatments}
    tables = []
    for name in report.variants[0].metrics:
        metric = METRICS[name]
        table_rows = []
        for summary in report.variants:
            est = summary.metrics[name]
            if summary.key in by_key:
                comparison = by_key[summary.key].comparisons[name]
                table_rows.append(_treatment_row(summary, comparison, metric, report.sequential))
            else:
                table_rows.append(
                    MetricRow(
                        summary.name, True, fmt_value(est.value, metric.unit), _ci(est, metric.unit), est.visitors
                    )
                )
        tables.append(MetricTable(metric, name == report.primary_metric, table_rows, f"chart-{name}", charts[name]))
    tables.sort(key=lambda t: not t.primary)  # the primary metric first, the guardrails after
    level = f"{(1 - report.comparison_alpha) * 100:g}%"
    p_kind = (
        f"always-valid p-value (mixture sequential test, tightest at {DEFAULT_TARGET_VISITORS:,} visitors): safe to read at every look"
        if report.sequential
        else "fixed-horizon p-value (Welch t-test): read it once, at the planned sample size"
    )
    return Dashboard(
        report=report,
        variants=lines,
        verdicts=[(t.name, t) for t in report.treatments],
        srm=report.srm,
        tables=tables,
        ci_level=level,
        variant_ci_level=f"{(1 - report.alpha) * 100:g}%",
        p_kind=p_kind,
        chart_source=source,
        snapshots=count,
        revenue_cap=fmt_value(data.revenue_cap, "currency") if math.isfinite(data.revenue_cap) else "",
    )
