"""A whole experiment's analysis: per-variant metrics over time, each treatment against the
control on every metric, the sample-ratio check, and a verdict on the primary metric.

With more than one treatment the comparisons use a Bonferroni-corrected alpha (alpha / number
of treatments), so the chance of any false winner stays at most alpha. Secondary metrics are
reported for diagnosis (guardrails) and do not drive the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from engine.experiments.metrics import METRICS, MetricMoments
from engine.experiments.sequential import DEFAULT_TARGET_VISITORS
from engine.experiments.stats import Comparison, MetricEstimate, SrmResult, compare_series, srm_test, summarise

MIN_VISITORS = 100  # per variant: below this the normal approximations are not trusted for a verdict

OUTCOMES = ("treatment_wins", "control_wins", "no_difference_yet", "not_enough_data", "sample_ratio_mismatch")

Look = Mapping[Hashable, Mapping[str, MetricMoments]]  # variant key -> metric name -> cumulative moments


@dataclass(frozen=True)
class VariantInput:
    """What the analysis needs to know about a variant."""

    key: Hashable
    name: str
    is_control: bool
    traffic_share: float


@dataclass(frozen=True)
class Verdict:
    """The reading of one comparison on the primary metric, in words."""

    outcome: str  # one of OUTCOMES
    label: str
    detail: str
    p_value: float
    alpha: float
    sequential: bool


def _fmt_p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else ("< 0.0001" if p < 1e-4 else f"{p:.4f}")


def verdict(
    comparison: Comparison,
    higher_is_better: bool,
    treatment_name: str = "treatment",
    control_name: str = "control",
    min_visitors: int = MIN_VISITORS,
    srm: SrmResult | None = None,
) -> Verdict:
    """Winner, no difference yet, or why no verdict: decided by the always-valid p when sequential."""
    sequential = comparison.sequential is not None
    p, alpha = comparison.decision_p, comparison.alpha
    kind = "always-valid p" if sequential else "p"

    def make(outcome: str, label: str, detail: str) -> Verdict:
        return Verdict(outcome, label, detail, p, alpha, sequential)

    if srm is not None and srm.flagged:
        return make(
            "sample_ratio_mismatch",
            "Sample ratio mismatch: results not trustworthy",
            f"visitor counts {list(srm.observed)} do not match the configured shares "
            f"(chi-square p = {_fmt_p(srm.p_value)} < {srm.threshold}); find the cause before reading results",
        )
    fewest = min(comparison.control.visitors, comparison.treatment.visitors)
    if fewest < min_visitors or not math.isfinite(p):
        return make(
            "not_enough_data",
            "Not enough data yet",
            f"{fewest} visitors in the smallest variant (a verdict needs {min_visitors} and a measurable metric)",
        )
    if p >= alpha:
        how = (
            "sequential test: safe to check daily"
            if sequential
            else "fixed-horizon test: read it once, at the planned sample size"
        )
        return make(
            "no_difference_yet", "No significant difference yet", f"{kind} = {_fmt_p(p)} >= alpha {alpha:g} ({how})"
        )
    treatment_better = (comparison.difference > 0) == higher_is_better
    winner = treatment_name if treatment_better else control_name
    outcome = "treatment_wins" if treatment_better else "control_wins"
    return make(outcome, f"{winner} wins", f"{kind} = {_fmt_p(p)} < alpha {alpha:g}")


@dataclass(frozen=True)
class VariantSummary:
    """One variant's metrics now and at each look (for charts)."""

    key: Hashable
    name: str
    is_control: bool
    traffic_share: float
    visitors: int
    metrics: dict[str, MetricEstimate]
    series: dict[str, list[MetricEstimate]]


@dataclass(frozen=True)
class TreatmentResult:
    """One treatment against the control: every metric at each look, and the primary verdict."""

    key: Hashable
    name: str
    comparisons: dict[str, Comparison]  # the latest look
    series: dict[str, list[Comparison]]
    verdict: Verdict


@dataclass(frozen=True)
class ExperimentReport:
    primary_metric: str
    alpha: float
    comparison_alpha: float  # alpha after the Bonferroni correction over treatments
    sequential: bool
    control_key: Hashable
    variants: list[VariantSummary]
    treatments: list[TreatmentResult]
    srm: SrmResult


def analyse_experiment(
    variants: Sequence[VariantInput],
    looks: Sequence[Look],
    primary_metric: str = "click_through_rate",
    alpha: float = 0.05,
    sequential: bool = True,
    target_visitors: float = DEFAULT_TARGET_VISITORS,
    min_visitors: int = MIN_VISITORS,
    metrics: Sequence[str] | None = None,
) -> ExperimentReport:
    """Analyse an experiment from its cumulative looks (oldest first; the last is now)."""
    if len(variants) < 2:
        raise ValueError("an experiment needs at least two variants")
    if not looks:
        raise ValueError("need at least one look")
    if primary_metric not in METRICS:
        raise ValueError(f"unknown metric {primary_metric!r}")
    names = list(metrics or METRICS)
    if primary_metric not in names:
        names.insert(0, primary_metric)
    control = next((v for v in variants if v.is_control), variants[0])
    treatments = [v for v in variants if v is not control]
    comparison_alpha = alpha / len(treatments)
    empty = MetricMoments(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def at(look: Look, key: Hashable, metric: str) -> MetricMoments:
        return look.get(key, {}).get(metric, empty)

    summaries = []
    for v in variants:
        series = {m: [summarise(at(look, v.key, m), alpha) for look in looks] for m in names}
        summaries.append(
            VariantSummary(
                v.key,
                v.name,
                v.is_control,
                v.traffic_share,
                series[primary_metric][-1].visitors,
                {m: s[-1] for m, s in series.items()},
                series,
            )
        )
    srm = srm_test([s.visitors for s in summaries], [v.traffic_share for v in variants])
    results = []
    for t in treatments:
        series = {
            m: compare_series(
                [(at(look, control.key, m), at(look, t.key, m)) for look in looks],
                comparison_alpha,
                m,
                sequential,
                target_visitors,
            )
            for m in names
        }
        latest = {m: s[-1] for m, s in series.items()}
        decided = verdict(
            latest[primary_metric], METRICS[primary_metric].higher_is_better, t.name, control.name, min_visitors, srm
        )
        results.append(TreatmentResult(t.key, t.name, latest, series, decided))
    return ExperimentReport(primary_metric, alpha, comparison_alpha, sequential, control.key, summaries, results, srm)
