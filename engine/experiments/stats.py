"""Treatment-versus-control statistics on visitor-level moments.

- Point estimate of a metric: sum(y) / sum(x) over visitors (x = 1 for a mean metric).
- Its variance by the delta method: Var(R) = Var(y - R x) / (n * mean(x)^2), i.e. the sample
  variance of the per-visitor linearised values L_i = (y_i - R x_i) / mean(x), over n.
  For a mean metric this is exactly s^2 / n.
- Difference: Welch's t on the linearised values (Welch-Satterthwaite degrees of freedom), so
  a mean metric reproduces scipy's ttest_ind(equal_var=False) and a ratio metric is the
  delta-method z-test once samples are large.
- Relative lift R_t / R_c - 1: interval from the delta method on log(R_t / R_c), whose
  variance is Var(R_t)/R_t^2 + Var(R_c)/R_c^2, mapped back by exp (not Fieller); it stays
  above -100% and is asymmetric as a ratio's should be.
- Sequential (always-valid) intervals: the mixture SPRT of sequential.py, its mixing variance
  from the difference's own per-visitor variance (sequential.target_tau2), so a heavy-tailed
  metric's confidence sequence stays a small multiple of its fixed-horizon interval.
- Sample-ratio mismatch: Pearson chi-square of visitors per variant against the configured
  shares, flagged at p < 0.001.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from engine.experiments.metrics import MetricMoments
from engine.experiments.sequential import DEFAULT_TARGET_VISITORS, SequentialResult, sequential_results, target_tau2

SRM_THRESHOLD = 0.001


def _cov(sab: ArrayLike, sa: NDArray, sb: NDArray, n: NDArray) -> NDArray:
    """Sample covariance (n - 1 denominator) from sums."""
    return (np.asarray(sab, dtype=np.float64) - sa * sb / n) / (n - 1)


def ratio_and_variance(m: MetricMoments) -> tuple[NDArray, NDArray, NDArray]:
    """(estimate, variance of the estimate, n) from moments, vectorised; NaN where undefined."""
    n = np.asarray(m.n, dtype=np.float64)
    sx, sy = np.asarray(m.sx, dtype=np.float64), np.asarray(m.sy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sx > 0, sy / sx, np.nan)
        var_y, cov_xy, var_x = _cov(m.syy, sy, sy, n), _cov(m.sxy, sx, sy, n), _cov(m.sxx, sx, sx, n)
        var_lin = (var_y - 2 * ratio * cov_xy + ratio**2 * var_x) / (sx / n) ** 2
        # Rounding can leave a tiny negative where every visitor has the same ratio.
        variance = np.where(n >= 2, np.maximum(var_lin, 0.0) / n, np.nan)
    return ratio, variance, n


def welch(control: MetricMoments, treatment: MetricMoments) -> dict[str, NDArray]:
    """Difference, standard error, Welch df, t statistic and two-sided p, vectorised over moments' shape."""
    r_c, v_c, n_c = ratio_and_variance(control)
    r_t, v_t, n_t = ratio_and_variance(treatment)
    diff = r_t - r_c
    var = v_t + v_c
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var)
        df = var**2 / (v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1))
        t = np.where(se > 0, diff / se, np.nan)
    df = np.where(np.isfinite(df), df, np.inf)
    p = np.where(np.isfinite(t), 2 * sps.t.sf(np.abs(np.nan_to_num(t)), df), np.nan)
    return {
        "diff": diff,
        "var": var,
        "se": se,
        "df": df,
        "t": t,
        "p": p,
        "control": r_c,
        "treatment": r_t,
        "var_control": v_c,
        "var_treatment": v_t,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricEstimate:
    """One variant's metric: value, standard error and a (1 - alpha) interval, with its totals."""

    value: float
    std_error: float
    ci_low: float
    ci_high: float
    visitors: int
    numerator: float
    denominator: float

    def to_dict(self) -> dict:
        """JSON-safe (NaN and infinities become None)."""
        return {k: _finite(float(v)) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    """Treatment against control on one metric at one look (fixed-horizon, plus sequential if asked)."""

    metric: str
    alpha: float
    control: MetricEstimate
    treatment: MetricEstimate
    difference: float
    difference_ci: tuple[float, float]
    relative: float  # R_t / R_c - 1; NaN when the control is zero
    relative_ci: tuple[float, float]  # delta method on the log ratio
    std_error: float
    statistic: float
    df: float
    p_value: float  # fixed-horizon, two-sided Welch
    sequential: SequentialResult | None = None

    @property
    def decision_p(self) -> float:
        """The p-value that decides: always-valid when the experiment is sequential."""
        return self.sequential.p_value if self.sequential is not None else self.p_value

    @property
    def decision_ci(self) -> tuple[float, float]:
        """The interval that matches decision_p: the confidence sequence when sequential."""
        if self.sequential is not None:
            return (self.sequential.ci_low, self.sequential.ci_high)
        return self.difference_ci

    def to_dict(self) -> dict:
        """JSON-safe (NaN and infinities become None)."""
        out = {
            k: _finite(float(getattr(self, k)))
            for k in ("alpha", "difference", "relative", "std_error", "statistic", "df", "p_value", "decision_p")
        }
        out["metric"] = self.metric
        out["control"], out["treatment"] = self.control.to_dict(), self.treatment.to_dict()
        for name in ("difference_ci", "relative_ci", "decision_ci"):
            out[name] = [_finite(float(v)) for v in getattr(self, name)]
        out["sequential"] = (
            {k: _finite(float(v)) for k, v in asdict(self.sequential).items()} if self.sequential else None
        )
        return out


def summarise(m: MetricMoments, alpha: float = 0.05) -> MetricEstimate:
    """A variant's metric with a delta-method interval (t quantile, n - 1 degrees of freedom)."""
    value, variance, n = (float(a) for a in ratio_and_variance(m))
    se = math.sqrt(variance) if math.isfinite(variance) else math.nan
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * se if n >= 2 else math.nan
    return MetricEstimate(
        value=value,
        std_error=se,
        ci_low=value - half,
        ci_high=value + half,
        visitors=int(n),
        numerator=float(m.sy),
        denominator=float(m.sx),
    )


def relative_interval(r_c: float, v_c: float, r_t: float, v_t: float, alpha: float) -> tuple[float, float, float]:
    """(lift, low, high) of R_t / R_c - 1 by the delta method on the log ratio; NaN unless both are positive."""
    if not (r_c > 0 and r_t > 0 and math.isfinite(v_c) and math.isfinite(v_t)):
        lift = r_t / r_c - 1 if r_c > 0 and math.isfinite(r_t) else math.nan
        return lift, math.nan, math.nan
    log_ratio = math.log(r_t / r_c)
    half = float(sps.norm.ppf(1 - alpha / 2)) * math.sqrt(v_t / r_t**2 + v_c / r_c**2)
    return math.exp(log_ratio) - 1, math.exp(log_ratio - half) - 1, math.exp(log_ratio + half) - 1


def compare(
    control: MetricMoments,
    treatment: MetricMoments,
    alpha: float = 0.05,
    metric: str = "",
    sequential: SequentialResult | None = None,
) -> Comparison:
    """Fixed-horizon comparison of treatment against control at one look."""
    w = {k: float(v) for k, v in welch(control, treatment).items()}
    half = float(sps.t.ppf(1 - alpha / 2, w["df"])) * w["se"]
    lift, low, high = relative_interval(w["control"], w["var_control"], w["treatment"], w["var_treatment"], alpha)
    return Comparison(
        metric=metric,
        alpha=alpha,
        control=summarise(control, alpha),
        treatment=summarise(treatment, alpha),
        difference=w["diff"],
        difference_ci=(w["diff"] - half, w["diff"] + half),
        relative=lift,
        relative_ci=(low, high),
        std_error=w["se"],
        statistic=w["t"],
        df=w["df"],
        p_value=w["p"],
        sequential=sequential,
    )


def compare_series(
    looks: Sequence[tuple[MetricMoments, MetricMoments]],
    alpha: float = 0.05,
    metric: str = "",
    sequential: bool = False,
    target_visitors: float = DEFAULT_TARGET_VISITORS,
) -> list[Comparison]:
    """One Comparison per look (cumulative (control, treatment) moments, oldest first).

    With sequential=True each carries the always-valid p-value and confidence sequence up to
    that look; the mixing variance is the latest look's per-visitor variance of the difference
    (its variance times its visitors), tuned for target_visitors (sequential.target_tau2).
    """
    if not looks:
        return []
    fixed = [welch(c, t) for c, t in looks]
    seq: list[SequentialResult | None] = [None] * len(looks)
    if sequential:
        last_c, last_t = looks[-1]
        visitors = float(last_c.n) + float(last_t.n)
        last_var = float(fixed[-1]["var"])
        tau2 = float(target_tau2(last_var, visitors, alpha, target_visitors)) if math.isfinite(last_var) else 0.0
        diffs = np.array([float(w["diff"]) for w in fixed])
        variances = np.array([float(w["var"]) for w in fixed])
        seq = list(sequential_results(np.nan_to_num(diffs), np.nan_to_num(variances), tau2, alpha))
    return [compare(c, t, alpha, metric, s) for (c, t), s in zip(looks, seq, strict=True)]


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check: visitors per variant against the configured shares."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    threshold: float
    flagged: bool


def srm_p_values(observed: ArrayLike, shares: Sequence[float]) -> tuple[NDArray, NDArray]:
    """(chi-square statistic, p) over the last axis of observed counts, vectorised."""
    counts = np.asarray(observed, dtype=np.float64)
    share = np.asarray(shares, dtype=np.float64)
    share = share / share.sum()
    expected = counts.sum(axis=-1, keepdims=True) * share
    live = share > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.sum(np.where(live, (counts - expected) ** 2 / expected, 0.0), axis=-1)
    p = sps.chi2.sf(stat, max(int(live.sum()) - 1, 1))
    # Visitors in a variant configured for no traffic are a mismatch however few they are.
    stray = np.any((~live) & (counts > 0), axis=-1)
    return np.where(stray, np.inf, stat), np.where(stray, 0.0, p)


def srm_test(observed: Sequence[int], shares: Sequence[float], threshold: float = SRM_THRESHOLD) -> SrmResult:
    """Pearson chi-square goodness of fit of visitor counts to the shares; flagged when p < threshold."""
    if len(observed) != len(shares) or len(observed) < 2:
        raise ValueError("need one share per variant and at least two variants")
    if sum(shares) <= 0 or any(s < 0 for s in shares):
        raise ValueError("shares must be non-negative with a positive total")
    total = sum(observed)
    expected = tuple(total * s / sum(shares) for s in shares)
    if total == 0:
        return SrmResult(tuple(observed), expected, 0.0, 1.0, threshold, False)
    stat, p = (float(a) for a in srm_p_values(observed, shares))
    return SrmResult(tuple(int(o) for o in observed), expected, stat, p, threshold, p < threshold)
