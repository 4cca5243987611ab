"""A/B test calibration: false positives under peeking, power, interval coverage, SRM detection.

    .venv/bin/python bench/ab_power.py [--runs 1000] [--visitors 20000] [--days 14] [--seed 7]

Simulates many experiments on synthetic shoppers (engine/experiments/simulate.py: Poisson
searches per visitor, a Beta-distributed click propensity per visitor), split 50/50 at
random, visitors arriving uniformly over the days. Each run is analysed exactly as the
dashboard does, with engine/experiments/stats.py on visitor-level moments (delta method):
  - fixed horizon: Welch/delta-method test read once, at the end;
  - naive peeking: the same test read at every daily look, stopping at the first p < alpha;
  - sequential: the mixture SPRT's always-valid p-value read at every daily look (the
    mixing variance from that look's own variance of the difference, tuned for --target
    visitors, as the dashboard computes it; --tau-from level uses tau = --tau x the pooled CTR).
A/A runs give the false-positive rate, A/B runs (click propensity times 1 + lift) the power
(a rejection in the right direction). Sample-ratio mismatch is checked on binomial splits.
Every run is vectorised with numpy over a chunk of experiments at once.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.experiments.metrics import MetricMoments  # noqa: E402
from engine.experiments.sequential import (  # noqa: E402
    DEFAULT_RELATIVE_TAU,
    DEFAULT_TARGET_VISITORS,
    confidence_sequence,
    default_tau2,
    log_likelihood_ratio,
    target_tau2,
)
from engine.experiments.simulate import ShopperModel, expected_click_through_rate, simulate_clicks  # noqa: E402
from engine.experiments.stats import SRM_THRESHOLD, srm_p_values, welch  # noqa: E402

CHUNK_VISITORS = 2_000_000  # visitors simulated per numpy batch (memory stays under ~0.5 GB)


def simulate_looks(
    runs: int, visitors: int, days: int, lift: float, rng: np.random.Generator, model: ShopperModel
) -> tuple[MetricMoments, MetricMoments]:
    """Cumulative CTR moments per (run, look) for control and treatment, each shaped (runs, days)."""
    parts = []
    chunk = max(1, CHUNK_VISITORS // visitors)
    for start in range(0, runs, chunk):
        k = min(chunk, runs - start)
        size = k * visitors
        arm = (rng.random(size) < 0.5).astype(np.int64)
        day = rng.integers(0, days, size)
        searches, _, clicks = simulate_clicks(size, rng, model, lift * arm)
        idx = (np.repeat(np.arange(k), visitors) * 2 + arm) * days + day
        x, y = searches.astype(np.float64), clicks.astype(np.float64)
        sums = [np.bincount(idx, weights=w, minlength=k * 2 * days) for w in (None, x, y, x * x, y * y, x * y)]
        parts.append(np.stack([s.reshape(k, 2, days) for s in sums]))
    moments = np.cumsum(np.concatenate(parts, axis=1), axis=-1)  # (6, runs, 2, days): cumulative over looks
    return MetricMoments(*moments[:, :, 0]), MetricMoments(*moments[:, :, 1])


def mixing_tau2(var: np.ndarray, visitors: np.ndarray, pooled: np.ndarray, alpha: float, tau: dict) -> np.ndarray:
    """The mSPRT mixing variance per run at one look: the dashboard's (from the difference's variance,
    stats.compare_series) or, with tau["from"] == "level", a fraction of the pooled CTR."""
    if tau["from"] == "level":
        return default_tau2(pooled, tau["relative"])
    return target_tau2(var, visitors, alpha, tau["target"])


def sequential_p_by_look(
    diff: np.ndarray, var: np.ndarray, visitors: np.ndarray, pooled: np.ndarray, alpha: float, tau: dict
) -> np.ndarray:
    """The always-valid p the dashboard shows at each look d: tau from look d, running min over looks <= d."""
    runs, days = diff.shape
    out = np.empty((runs, days))
    for d in range(days):
        tau2 = mixing_tau2(var[:, d], visitors[:, d], pooled[:, d], alpha, tau)[:, None]
        instant = np.exp(-log_likelihood_ratio(diff[:, : d + 1], var[:, : d + 1], tau2))
        out[:, d] = np.minimum(1.0, instant.min(axis=1))
    return out


def analyse(control: MetricMoments, treatment: MetricMoments, alpha: float, tau: dict) -> dict:
    """Per-run outcomes of the three ways of reading the test, and interval coverage inputs."""
    w = welch(control, treatment)
    diff, var = np.nan_to_num(w["diff"]), np.nan_to_num(w["var"])
    pooled = (control.sy + treatment.sy) / (control.sx + treatment.sx)
    visitors = np.asarray(control.n, dtype=np.float64) + np.asarray(treatment.n, dtype=np.float64)
    seq_p = sequential_p_by_look(diff, var, visitors, pooled, alpha, tau)
    significant = w["p"] < alpha
    last_tau2 = mixing_tau2(var[:, -1], visitors[:, -1], pooled[:, -1], alpha, tau)
    return {
        "diff": w["diff"],
        "se": w["se"],
        "df": w["df"],
        "fixed": significant[:, -1],
        "fixed_sign": np.sign(w["diff"][:, -1]),
        "peek": significant.any(axis=1),
        "peek_sign": np.sign(np.take_along_axis(w["diff"], significant.argmax(axis=1)[:, None], axis=1)[:, 0]),
        "peek_stop": significant.argmax(axis=1),
        "seq": (seq_p < alpha).any(axis=1),
        "seq_sign": np.sign(np.take_along_axis(diff, (seq_p < alpha).argmax(axis=1)[:, None], axis=1)[:, 0]),
        "seq_stop": (seq_p < alpha).argmax(axis=1),
        "cs": confidence_sequence(diff, var, last_tau2, alpha),
    }


def rate_row(label: str, test: str, looks: int, hits: np.ndarray, stop: np.ndarray | None = None) -> str:
    """One table line: the rate with a normal-approximation 95% interval, and the median stopping look."""
    runs, rate = hits.size, float(hits.mean())
    half = 1.96 * math.sqrt(max(rate * (1 - rate), 1e-12) / runs)
    ci = f"{100 * max(rate - half, 0):6.2f} - {100 * min(rate + half, 1):6.2f}"
    median = f"{np.median(stop[hits]) + 1:>5.0f}" if stop is not None and hits.any() else f"{'':>5}"
    return f"{label:<24} {test:<36} {looks:>5} {runs:>7} {int(hits.sum()):>6} {100 * rate:>7.2f}%  [{ci}] {median}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="simulated experiments per scenario")
    parser.add_argument("--visitors", type=int, default=20_000, help="visitors per experiment (both arms)")
    parser.add_argument("--days", type=int, default=14, help="daily looks")
    parser.add_argument("--lifts", default="0.05,0.10", help="relative CTR lifts for the A/B scenarios")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tau-from", choices=("variance", "level"), default="variance", help="mSPRT mixing scale")
    parser.add_argument("--target", type=float, default=DEFAULT_TARGET_VISITORS, help="visitors the CS is tuned for")
    parser.add_argument("--tau", type=float, default=DEFAULT_RELATIVE_TAU, help="with --tau-from level: relative sd")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    model = ShopperModel()
    started = time.perf_counter()
    print(
        f"{args.runs} runs x {args.visitors} visitors (50/50), {args.days} daily looks, alpha {args.alpha}, "
        + (
            f"mSPRT tau = {args.tau:.0%} of the pooled CTR"
            if args.tau_from == "level"
            else f"mSPRT tau from the difference's variance, tuned for {args.target:,.0f} visitors"
        )
        + f"; CTR = clicks per search "
        f"{expected_click_through_rate(model):.3f}, {model.mean_searches:g} searches per visitor"
    )
    header = (
        f"{'scenario':<24} {'test':<36} {'looks':>5} {'runs':>7} {'hits':>6} {'rate':>8}  [{'95% CI, %':^15}] "
        f"{'stop':>5}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    days = args.days
    base_ctr = expected_click_through_rate(model)
    notes: list[str] = []
    for lift in [0.0] + [float(v) for v in args.lifts.split(",") if v]:
        control, treatment = simulate_looks(args.runs, args.visitors, days, lift, rng, model)
        tau = {"from": args.tau_from, "relative": args.tau, "target": args.target}
        out = analyse(control, treatment, args.alpha, tau)
        label = "A/A (false positives)" if lift == 0.0 else f"A/B +{lift:.0%} CTR (power)"

        def pick(key: str, out: dict = out, lift: float = lift) -> np.ndarray:
            # A/A: any rejection is false; A/B: only a rejection that names the treatment counts as power.
            return out[key] if lift == 0.0 else out[key] & (out[key + "_sign"] > 0)

        print(rate_row(label, "fixed horizon, read once", 1, pick("fixed")))
        print(rate_row(label, "fixed horizon, naive daily peeking", days, pick("peek"), out["peek_stop"]))
        print(rate_row(label, "sequential mSPRT, daily peeking", days, pick("seq"), out["seq_stop"]))
        truth = expected_click_through_rate(model, lift) - expected_click_through_rate(model)
        half = student_t.ppf(1 - args.alpha / 2, out["df"][:, -1]) * out["se"][:, -1]
        covered = np.abs(out["diff"][:, -1] - truth) <= half
        print(rate_row(label, "coverage: fixed CI of difference", 1, covered))
        low, high = out["cs"]
        print(
            rate_row(label, "coverage: conf. sequence, all looks", days, ((low <= truth) & (truth <= high)).all(axis=1))
        )
        if lift == 0.0:
            se = float(np.nanmean(out["se"][:, -1]))
            # Clicks on one search are B * (1 + Poisson(e)), B ~ Bernoulli(propensity): their variance if every
            # search were an independent trial, which is what a search-level test would assume.
            mu, e = model.click_propensity, model.extra_clicks
            per_search_var = mu * (1 + 3 * e + e * e) - (mu * (1 + e)) ** 2
            naive = math.sqrt(2 * per_search_var / (model.mean_searches * args.visitors / 2))
            mde = (student_t.ppf(1 - args.alpha / 2, np.inf) + student_t.ppf(0.8, np.inf)) * se / base_ctr
            notes.append(
                f"CTR difference at the horizon: visitor-level (delta) SE {se:.5f}; searches-as-independent SE "
                f"would claim {naive:.5f} ({se / naive:.2f}x too small). Fixed-horizon MDE at 80% power: "
                f"{mde:.1%} relative."
            )
    srm_runs = 100 * args.runs
    for observed_share in (0.50, 0.505, 0.52):
        treated = rng.binomial(args.visitors, observed_share, srm_runs)
        _, p = srm_p_values(np.stack([args.visitors - treated, treated], axis=1), (0.5, 0.5))
        label = f"SRM 50/50 vs {100 * (1 - observed_share):g}/{100 * observed_share:g}"
        print(rate_row(label, f"chi-square flag (p < {SRM_THRESHOLD:g})", 1, p < SRM_THRESHOLD))
    print(
        "\n" + "\n".join(notes) + "\nstop: median daily look of the first rejection; SRM rows use 100x runs "
        "(one binomial split each)."
    )
    print(f"elapsed {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
