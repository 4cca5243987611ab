"""Always-valid inference for a difference that is (asymptotically) normal: the mixture SPRT.

Johari, Pekelis, Koomen and Walsh (2017), "Peeking at A/B tests: why it matters, and what
to do about it" (KDD). At each look n the estimated difference d_n has variance V_n; mixing
the alternative theta ~ N(theta0, tau^2) gives the likelihood ratio

    Lambda_n = sqrt(V_n / (V_n + tau^2)) * exp(tau^2 (d_n - theta0)^2 / (2 V_n (V_n + tau^2)))

which is a martingale under H0, so by Ville's inequality P(sup_n Lambda_n >= 1/alpha) <= alpha.
The always-valid p-value is the running minimum of 1/Lambda_n, and the confidence sequence is
the running intersection of {theta0 : Lambda_n(theta0) < 1/alpha}. Both may be read at every
look (daily, or on every page load) without inflating the error rate. V_n is the plug-in
delta-method variance, as in the paper's practical use; the bench measures what that costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

# A mixing scale as a fraction of the metric's level (bench/ab_power.py's design): lifts of a few
# percent are what a ranking change moves, and the mSPRT has most power for effects near tau
# (Johari et al. 4.3). The dashboard uses target_tau2 instead.
DEFAULT_RELATIVE_TAU = 0.05


@dataclass(frozen=True)
class SequentialResult:
    """Always-valid p-value and confidence sequence for the difference, at one look."""

    p_value: float
    ci_low: float
    ci_high: float
    tau2: float
    looks: int


# The visitors (both arms) at which the confidence sequence is tightest: GrowthBook's default
# "sequential tuning parameter". Wider than the fixed-horizon interval before it, slowly wider after.
DEFAULT_TARGET_VISITORS = 5000


def target_tau2(variance: ArrayLike, visitors: ArrayLike, alpha: float, target: float = DEFAULT_TARGET_VISITORS):
    """Mixing variance from the difference's own per-visitor variance (variance * visitors),
    chosen so the confidence sequence is narrowest at `target` visitors (Howard et al. 2021,
    eq. 14, as GrowthBook uses it): tau^2 = rho^2 * sigma^2 with
    rho^2 = (2 log(1/alpha) + log(2 log(1/alpha) + 1)) / target.

    Scaling by the metric's variance keeps the interval in proportion to the data's spread: a
    scale from the metric's level alone is far below a heavy-tailed metric's variance (revenue),
    and a confidence sequence then grows like V / tau instead of sqrt(V)."""
    log_term = 2 * np.log(1 / alpha)
    rho2 = (log_term + np.log(log_term + 1)) / float(target)
    return rho2 * np.asarray(variance, dtype=np.float64) * np.asarray(visitors, dtype=np.float64)


def default_tau2(reference: ArrayLike, relative_tau: float = DEFAULT_RELATIVE_TAU) -> NDArray[np.float64]:
    """Mixing variance for a metric at level `reference` (pooled over arms): (relative_tau * level)^2."""
    return (relative_tau * np.abs(np.asarray(reference, dtype=np.float64))) ** 2


def log_likelihood_ratio(diff: ArrayLike, variance: ArrayLike, tau2: ArrayLike, theta0: float = 0.0) -> NDArray:
    """log Lambda for H0: difference == theta0 against the N(theta0, tau2) mixture; 0 where undefined."""
    d = np.asarray(diff, dtype=np.float64) - theta0
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 0.5 * np.log(v / (v + t2)) + t2 * d**2 / (2 * v * (v + t2))
    # No information yet (no variance estimate, or no mixing scale): Lambda = 1, nothing learned.
    return np.where(np.isfinite(value) & (v > 0) & (t2 > 0), value, 0.0)


def always_valid_p(diffs: ArrayLike, variances: ArrayLike, tau2: ArrayLike) -> NDArray[np.float64]:
    """Running-minimum always-valid p-values along the last axis (the looks, oldest first)."""
    instant = np.minimum(1.0, np.exp(-log_likelihood_ratio(diffs, variances, np.asarray(tau2)[..., None])))
    return np.minimum.accumulate(instant, axis=-1)


def confidence_sequence(
    diffs: ArrayLike, variances: ArrayLike, tau2: ArrayLike, alpha: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(low, high) of the running-intersection confidence sequence along the last axis."""
    d = np.asarray(diffs, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(v * (v + t2) / t2 * (2 * np.log(1 / alpha) + np.log((v + t2) / v)))
    half = np.where((v > 0) & (t2 > 0) & np.isfinite(half), half, np.inf)
    low = np.maximum.accumulate(np.where(np.isfinite(d), d - half, -np.inf), axis=-1)
    high = np.minimum.accumulate(np.where(np.isfinite(d), d + half, np.inf), axis=-1)
    return low, high


def sequential_results(diffs: ArrayLike, variances: ArrayLike, tau2: float, alpha: float) -> list[SequentialResult]:
    """One SequentialResult per look for a single experiment's series of (difference, variance)."""
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    v = np.asarray(variances, dtype=np.float64).reshape(-1)
    p = always_valid_p(d, v, tau2)
    low, high = confidence_sequence(d, v, tau2, alpha)
    return [
        SequentialResult(
            p_value=float(p[i]), ci_low=float(low[i]), ci_high=float(high[i]), tau2=float(tau2), looks=i + 1
        )
        for i in range(d.size)
    ]
