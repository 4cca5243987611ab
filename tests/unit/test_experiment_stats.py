"""Experiment statistics (engine.experiments.stats, sequential, report) against known values."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from engine.experiments.metrics import MetricMoments, VisitorData, metric_moments
from engine.experiments.report import VariantInput, analyse_experiment, verdict
from engine.experiments.sequential import (
    always_valid_p,
    confidence_sequence,
    log_likelihood_ratio,
    sequential_results,
)
from engine.experiments.simulate import simulate_visitors
from engine.experiments.stats import compare, compare_series, ratio_and_variance, relative_interval, srm_test

# Four visitors' (searches, clicks), worked by hand in test_delta_method_matches_hand_computation.
SEARCHES = [2, 1, 3, 2]
CLICKS = [1, 0, 2, 2]


def ctr_moments(searches, clicks) -> MetricMoments:
    return metric_moments(VisitorData.from_columns({"searches": searches, "clicks": clicks}), "click_through_rate")


def test_delta_method_matches_hand_computation():
    # R = 5/8; mean x = 2; linearised L_i = (y_i - R x_i) / 2 = -0.125, -0.3125, 0.0625, 0.375;
    # their sample variance is 0.2578125 / 3, and Var(R) = that / n = 0.021484375.
    value, variance, n = ratio_and_variance(ctr_moments(SEARCHES, CLICKS))
    assert value == pytest.approx(0.625, abs=1e-15)
    assert variance == pytest.approx(0.021484375, rel=1e-12)
    assert n == 4
    # The textbook delta formula gives the same number.
    x, y = np.array(SEARCHES, float), np.array(CLICKS, float)
    mx, my = x.mean(), y.mean()
    textbook = (np.var(y, ddof=1) / mx**2 - 2 * my * np.cov(x, y)[0, 1] / mx**3 + my**2 * np.var(x, ddof=1) / mx**4) / 4
    assert variance == pytest.approx(textbook, rel=1e-12)


def test_delta_variance_matches_the_spread_of_the_ratio_over_repeated_samples():
    rng = np.random.default_rng(3)
    estimates, predicted = [], []
    for _ in range(400):
        data = simulate_visitors(300, rng)
        value, variance, _ = ratio_and_variance(metric_moments(data, "click_through_rate"))
        estimates.append(float(value))
        predicted.append(float(variance))
    # The ratio's real sampling variance is what the delta method predicts (within Monte Carlo error),
    # and far above what counting searches as independent trials would claim.
    assert np.var(estimates, ddof=1) == pytest.approx(np.mean(predicted), rel=0.2)
    naive = 0.375 * 0.625 / 900
    assert np.mean(predicted) > 2 * naive


def test_mean_metric_moments_are_the_sample_mean_and_its_variance():
    revenue = [0.0, 12.5, 0.0, 40.0, 3.25]
    m = metric_moments(VisitorData.from_columns({"revenue": revenue}), "revenue_per_visitor")
    value, variance, _ = ratio_and_variance(m)
    assert value == pytest.approx(np.mean(revenue))
    assert variance == pytest.approx(np.var(revenue, ddof=1) / 5)


def test_welch_matches_scipy_on_visitor_means():
    rng = np.random.default_rng(11)
    a, b = simulate_visitors(700, rng), simulate_visitors(450, rng, lift=0.1)
    result = compare(metric_moments(a, "revenue_per_visitor"), metric_moments(b, "revenue_per_visitor"))
    reference = sps.ttest_ind(b.revenue, a.revenue, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9)
    assert result.df == pytest.approx(reference.df, rel=1e-9)
    ci = reference.confidence_interval(0.95)
    assert result.difference_ci == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_ratio_metric_test_is_welch_on_the_linearised_values():
    rng = np.random.default_rng(12)
    a, b = simulate_visitors(600, rng), simulate_visitors(500, rng, lift=0.08)

    def linearised(d: VisitorData) -> np.ndarray:
        ratio = d.clicks.sum() / d.searches.sum()
        return (d.clicks - ratio * d.searches) / d.searches.mean() + ratio

    result = compare(metric_moments(a, "click_through_rate"), metric_moments(b, "click_through_rate"))
    reference = sps.ttest_ind(linearised(b), linearised(a), equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.difference == pytest.approx(b.clicks.sum() / b.searches.sum() - a.clicks.sum() / a.searches.sum())


def test_relative_interval_is_the_delta_method_on_the_log_ratio():
    lift, low, high = relative_interval(0.40, 0.0004, 0.44, 0.0009, alpha=0.05)
    se_log = math.sqrt(0.0009 / 0.44**2 + 0.0004 / 0.40**2)
    assert lift == pytest.approx(0.1)
    assert low == pytest.approx(1.1 * math.exp(-1.959963984540054 * se_log) - 1)
    assert high == pytest.approx(1.1 * math.exp(1.959963984540054 * se_log) - 1)
    assert math.log1p(high) - math.log1p(lift) == pytest.approx(math.log1p(lift) - math.log1p(low))
    assert all(math.isnan(v) for v in relative_interval(0.0, 0.0, 0.1, 0.001, 0.05)[1:])


@pytest.mark.parametrize(
    ("observed", "shares"),
    [((5100, 4900), (0.5, 0.5)), ((812, 1630, 2489), (0.2, 0.3, 0.5)), ((10, 30), (1, 3))],
)
def test_srm_matches_scipy_chisquare(observed, shares):
    result = srm_test(observed, shares)
    total = sum(observed)
    reference = sps.chisquare(observed, [total * s / sum(shares) for s in shares])
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.flagged == (reference.pvalue < 0.001)


def test_srm_flags_skewed_shares_and_strays():
    assert srm_test((10400, 9600), (0.5, 0.5)).flagged
    assert not srm_test((10100, 9900), (0.5, 0.5)).flagged
    stray = srm_test((100, 100, 1), (0.5, 0.5, 0.0))
    assert stray.flagged and stray.p_value == 0.0
    assert not srm_test((0, 0), (0.5, 0.5)).flagged


def test_confidence_intervals_cover_at_the_nominal_rate_in_aa_tests():
    rng = np.random.default_rng(2024)
    covered_abs = covered_rel = 0
    runs = 500
    for _ in range(runs):
        result = compare(
            metric_moments(simulate_visitors(400, rng), "click_through_rate"),
            metric_moments(simulate_visitors(400, rng), "click_through_rate"),
        )
        covered_abs += result.difference_ci[0] <= 0 <= result.difference_ci[1]
        covered_rel += result.relative_ci[0] <= 0 <= result.relative_ci[1]
    # 95% +- 3 standard errors of a proportion over 500 runs.
    tolerance = 3 * math.sqrt(0.05 * 0.95 / runs)
    assert abs(covered_abs / runs - 0.95) <= tolerance
    assert abs(covered_rel / runs - 0.95) <= tolerance


def test_mixture_likelihood_ratio_matches_numerical_integration():
    diff, variance, tau2 = 0.03, 0.0002, 0.0004
    density = lambda theta: sps.norm.pdf(diff, theta, math.sqrt(variance)) * sps.norm.pdf(theta, 0, math.sqrt(tau2))  # noqa: E731
    mixture, _ = integrate.quad(density, -1, 1, points=[0, diff])
    expected = math.log(mixture / sps.norm.pdf(diff, 0, math.sqrt(variance)))
    assert float(log_likelihood_ratio(diff, variance, tau2)) == pytest.approx(expected, rel=1e-8)


def test_confidence_sequence_edge_is_where_the_likelihood_ratio_reaches_one_over_alpha():
    low, high = confidence_sequence([0.02], [0.0001], 0.0009, alpha=0.05)
    for edge in (low[0], high[0]):
        assert float(log_likelihood_ratio(0.02, 0.0001, 0.0009, theta0=edge)) == pytest.approx(math.log(20))


def test_sequential_p_is_monotone_and_never_below_the_fixed_horizon_p():
    rng = np.random.default_rng(5)
    control, treatment = simulate_visitors(4000, rng), simulate_visitors(4000, rng, lift=0.06)
    days_c, days_t = rng.integers(0, 14, len(control)), rng.integers(0, 14, len(treatment))
    looks = [
        (
            metric_moments(control.select(days_c <= d), "click_through_rate"),
            metric_moments(treatment.select(days_t <= d), "click_through_rate"),
        )
        for d in range(14)
    ]
    series = compare_series(looks, alpha=0.05, sequential=True)
    p_seq = np.array([c.sequential.p_value for c in series])
    assert np.all(np.diff(p_seq) <= 0)
    instant = [
        min(1.0, math.exp(-float(log_likelihood_ratio(c.difference, c.std_error**2, series[-1].sequential.tau2))))
        for c in series
    ]
    z_p = [2 * sps.norm.sf(abs(c.difference / c.std_error)) for c in series]
    assert all(i >= z for i, z in zip(instant, z_p, strict=True))  # exp(-z^2/2) bounds the normal tail
    assert p_seq[-1] >= min(c.p_value for c in series) - 1e-12
    assert p_seq[-1] == pytest.approx(min(instant))
    lows = [c.sequential.ci_low for c in series]
    highs = [c.sequential.ci_high for c in series]
    assert np.all(np.diff(lows) >= 0) and np.all(np.diff(highs) <= 0)  # running intersection


def test_always_valid_p_keeps_false_positives_under_alpha_with_continuous_peeking():
    rng = np.random.default_rng(8)
    runs, looks = 4000, 60
    increments = rng.normal(0.0, 1.0, (runs, looks))
    n = np.arange(1, looks + 1)
    diffs, variances = np.cumsum(increments, axis=1) / n, 1.0 / n  # a mean difference with known variance
    fpr_sequential = (always_valid_p(diffs, variances, 0.1)[:, -1] < 0.05).mean()
    fpr_naive = (2 * sps.norm.sf(np.abs(diffs / np.sqrt(variances))) < 0.05).any(axis=1).mean()
    assert fpr_sequential <= 0.05
    assert fpr_naive > 0.2


def test_sequential_results_without_information_say_nothing():
    results = sequential_results([0.0, 0.1], [0.0, 0.0], tau2=0.01, alpha=0.05)
    assert [r.p_value for r in results] == [1.0, 1.0]
    assert results[-1].ci_low == -math.inf and results[-1].ci_high == math.inf


def fixed_comparison(difference: float, p: float, visitors: int = 1000):
    rng = np.random.default_rng(0)
    base = compare(
        metric_moments(simulate_visitors(visitors, rng), "click_through_rate"),
        metric_moments(simulate_visitors(visitors, rng), "click_through_rate"),
    )
    return replace(base, difference=difference, p_value=p)


def test_verdict_reads_direction_and_metric_orientation():
    assert verdict(fixed_comparison(0.02, 0.01), higher_is_better=True, treatment_name="B").label == "B wins"
    assert verdict(fixed_comparison(0.02, 0.01), higher_is_better=False).outcome == "control_wins"
    assert verdict(fixed_comparison(-0.02, 0.01), higher_is_better=False).outcome == "treatment_wins"
    undecided = verdict(fixed_comparison(0.02, 0.2), higher_is_better=True)
    assert undecided.outcome == "no_difference_yet" and "fixed-horizon" in undecided.detail
    assert verdict(fixed_comparison(0.02, 0.01, visitors=50), True).outcome == "not_enough_data"
    srm = srm_test((10400, 9600), (0.5, 0.5))
    assert verdict(fixed_comparison(0.02, 0.01), True, srm=srm).outcome == "sample_ratio_mismatch"


def test_analyse_experiment_corrects_alpha_for_several_treatments_and_uses_sequential_p():
    rng = np.random.default_rng(21)
    arms = {1: simulate_visitors(3000, rng), 2: simulate_visitors(3000, rng, lift=0.2), 3: simulate_visitors(3000, rng)}
    variants = [
        VariantInput(1, "A", True, 1 / 3),
        VariantInput(2, "B", False, 1 / 3),
        VariantInput(3, "C", False, 1 / 3),
    ]
    look = {
        k: {m: metric_moments(d, m) for m in ("click_through_rate", "revenue_per_visitor")} for k, d in arms.items()
    }
    report = analyse_experiment(variants, [look], metrics=["click_through_rate", "revenue_per_visitor"])
    assert report.comparison_alpha == pytest.approx(0.025)
    assert not report.srm.flagged
    b, c = report.treatments
    assert b.verdict.outcome == "treatment_wins" and b.verdict.sequential
    assert b.verdict.p_value == b.comparisons["click_through_rate"].sequential.p_value
    assert c.verdict.outcome == "no_difference_yet"
    assert [v.visitors for v in report.variants] == [3000, 3000, 3000]
    assert set(report.variants[0].series) == {"click_through_rate", "revenue_per_visitor"}
    assert b.comparisons["click_through_rate"].to_dict()["sequential"]["p_value"] is not None
