"""Time-aware and personalised ranking on simulated traffic, in process, with the real engine code.

    .venv/bin/python bench/shift_scenario.py [--searches 8000] [--seed 1] [--only shift|personal]
        [--brands relevant|any] [--brand-lift 3]
    (or: .venv/bin/python bench/learning_loop.py --scenario shift [the same flags])

Shift: shoppers search the 150 demo queries (lexical retrieval, no model needed) on a
simulated clock and click by judged gain (engine.evaluation.simulator's position-based
model). Halfway through, a product line becomes popular: for a random share of queries,
a few relevant but not top-ranked products (stage-1 positions 4-15, judged Substitute or
better) become as attractive as the best match and twice as likely to go to the cart.
Two arms see the same stream of (time, query, shopper draws): static serves stage 1
only; time-aware serves stage 2 (Searcher.search with a SearchContext) with a
ContextRanker fitted by fit_context_ranker on its own logged pages after a warm-up and
refitted on a schedule, reading its own SignalBoard fed by its own traffic.

Personal (bench/personal_scenario.py, on 0.6 x --searches): brand-loyal visitors,
personalised vs non-personal stage 2. Lifts come with 95% block-bootstrap intervals
(blocks of 100 consecutive searches, or sessions), the arms paired on the same stream.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the fits' small matmuls only lose to thread contention
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.personal_scenario import PersonalResult, PersonalSettings, run_personal  # noqa: E402
from bench.shift_world import T0, Arm, Lift, Taste, World, demo_world, lift, react  # noqa: E402

RELEVANT_GAIN = 0.1  # relative gain of an ESCI Substitute: "relevant" when picking the popular products
STREAM, HOT = 1, 2  # salts of the scenario's random streams
BLOCK = 100  # consecutive searches per bootstrap block (an arm's searches depend on its recent past)


@dataclass(frozen=True)
class ShiftSettings:
    searches: int = 8000
    per_hour: float = 600.0  # searches per simulated hour
    first_fit_at: float = 0.2  # share of the run logged before the first fit (warm-up)
    shift_at: float = 0.5  # share of the run before preferences shift
    refit_minutes: float = 120.0
    fit_pages: int = 1500  # the newest pages each fit reads
    hot_query_share: float = 0.3
    hot_per_query: int = 2
    hot_positions: tuple[int, int] = (4, 16)  # stage-1 positions popular products come from, [from, to)
    hot_cart_factor: float = 2.0
    page_size: int = 24
    seed: int = 1


@dataclass
class ShiftResult:
    static: Arm
    aware: Arm
    clicks: dict[str, np.ndarray]
    purchases: dict[str, np.ndarray]
    period: np.ndarray  # 0 warm-up, 1 fitted before the shift, 2 after the shift
    hot_query: np.ndarray  # the search's query has products that became popular
    hot_rank: dict[str, np.ndarray]  # their mean position on the page (page size + 1: not shown), else NaN
    hours_after_shift: np.ndarray
    shift_time: float
    hot_products: int


def _hot_products(world: World, settings: ShiftSettings, rng: np.random.Generator) -> dict[str, list[int]]:
    """Query id -> the products of the line that becomes popular in its results."""
    sim, start, stop = world.simulator, settings.hot_positions[0] - 1, settings.hot_positions[1] - 1
    candidates = {}
    for query in sim.queries:
        hits, _, _ = world.searcher.retrieve(query.text)
        chosen = [
            pid
            for pid, _ in hits[start:stop]
            if sim.relative_gain(query.qid, world.searcher.cards[pid].external_id) >= RELEVANT_GAIN
        ]
        if chosen:
            candidates[query.qid] = chosen
    qids = sorted(candidates)
    share = min(round(settings.hot_query_share * len(sim.queries)), len(qids))
    picked = rng.choice(len(qids), size=share, replace=False)
    hot = {}
    for index in sorted(picked):
        pids = candidates[qids[index]]
        hot[qids[index]] = [
            int(p) for p in rng.choice(pids, size=min(settings.hot_per_query, len(pids)), replace=False)
        ]
    return hot


def run_shift(world: World, settings: ShiftSettings, progress: bool = False) -> ShiftResult:
    """Static vs time-aware over one stream whose preferences shift partway."""
    n, sim = settings.searches, world.simulator
    rng = np.random.default_rng([settings.seed, STREAM])
    times = T0 + np.cumsum(rng.exponential(3600.0 / settings.per_hour, size=n))
    picks = rng.integers(len(sim.queries), size=n)
    hot = _hot_products(world, settings, np.random.default_rng([settings.seed, HOT]))
    hot_ids = {pid for pids in hot.values() for pid in pids}
    static = Arm.over(world, "static", staged=False, page_size=settings.page_size)
    aware = Arm.over(world, "time-aware", staged=True, page_size=settings.page_size)
    arms = (static, aware)
    first_fit, shift = int(settings.first_fit_at * n), int(settings.shift_at * n)
    clicks = {arm.name: np.zeros(n) for arm in arms}
    purchases = {arm.name: np.zeros(n) for arm in arms}
    hot_rank = {arm.name: np.full(n, np.nan) for arm in arms}
    period = np.where(np.arange(n) < first_fit, 0, np.where(np.arange(n) < shift, 1, 2))
    next_fit = np.inf
    steady, shifted = Taste(), Taste(hot=frozenset(hot_ids), hot_cart_factor=settings.hot_cart_factor)
    for i in range(n):
        now, query = float(times[i]), sim.queries[int(picks[i])]
        if i == first_fit or now >= next_fit:
            aware.refit(now, settings.fit_pages)
            next_fit = now + 60.0 * settings.refit_minutes
        taste = shifted if i >= shift else steady
        for arm in arms:
            response = arm.search(query.text, now)
            gains = react(world, query.qid, response.hits, taste, (settings.seed, STREAM, i))
            arm.feed(i, query.text, response, gains, now)
            clicks[arm.name][i], purchases[arm.name][i] = (gains > 0).sum(), (gains == 3).sum()
            if query.qid in hot:
                shown = {h.card.id: h.position for h in response.hits}
                hot_rank[arm.name][i] = np.mean([shown.get(p, settings.page_size + 1) for p in hot[query.qid]])
        if progress and (i + 1) % 1000 == 0:
            print(f"   shift: {i + 1}/{n} searches", flush=True)
    return ShiftResult(
        static=static,
        aware=aware,
        clicks=clicks,
        purchases=purchases,
        period=period,
        hot_query=np.array([sim.queries[int(p)].qid in hot for p in picks]),
        hot_rank=hot_rank,
        hours_after_shift=(times - times[min(shift, n - 1)]) / 3600.0,
        shift_time=float(times[min(shift, n - 1)]),
        hot_products=len(hot_ids),
    )


def _line(label: str, result: Lift) -> str:
    return (
        f"  {label:<56} {result.control:>8.4f} {result.treated:>8.4f} {100 * result.lift:>+7.1f}%  "
        f"[{100 * result.low:+.1f}%, {100 * result.high:+.1f}%]  {result.searches:>6}"
    )


def shift_lifts(result: ShiftResult, seed: int) -> dict[str, Lift]:
    """Time-aware over static: CTR and purchase rate per search, before and after the shift."""
    blocks = np.arange(len(result.period)) // BLOCK
    lifts = {}
    for label, mask in (
        ("before the shift (ranker fitted)", result.period == 1),
        ("before the shift, queries with the new line", (result.period == 1) & result.hot_query),
        ("after the shift", result.period == 2),
        ("after the shift, queries with the new line", (result.period == 2) & result.hot_query),
        ("after the shift, other queries", (result.period == 2) & ~result.hot_query),
    ):
        for metric, values in (("CTR", result.clicks), ("purchases", result.purchases)):
            lifts[f"{metric}, {label}"] = lift(values["time-aware"][mask], values["static"][mask], blocks[mask], seed)
    return lifts


def print_shift(result: ShiftResult, settings: ShiftSettings, seconds: float) -> dict[str, Lift]:
    lifts = shift_lifts(result, settings.seed)
    fits = result.aware.fits
    kept = sum(1 for _, fit in fits if fit.ranker is not None)
    print(
        f"\nShift: {settings.searches} searches at {settings.per_hour:g}/h, {result.hot_products} products "
        f"become popular at search {int(settings.shift_at * settings.searches)}; {len(fits)} fits "
        f"({kept} kept), {seconds:.0f} s"
    )
    print(f"  {'per search, time-aware vs static':<56} {'static':>8} {'aware':>8} {'lift':>8}  95% CI  searches")
    for label, value in lifts.items():
        print(_line(label, value))
    after = result.period == 2
    hours = np.floor(result.hours_after_shift[after]).astype(int)
    ratios = []
    for hour in range(min(int(hours.max()) + 1, 12) if len(hours) else 0):
        in_hour = hours == hour
        static, aware = result.clicks["static"][after][in_hour].sum(), result.clicks["time-aware"][after][in_hour].sum()
        ratios.append(f"{hour}h {100 * (aware / static - 1):+.0f}%" if static else f"{hour}h -")
    print("  CTR lift by hour after the shift: " + ", ".join(ratios))
    for name, ranks in result.hot_rank.items():
        by_hour = [np.nanmean(ranks[after][hours == h]) for h in range(min(int(hours.max()) + 1, 12))]
        print(f"  mean position of the new line, {name}, by hour: " + ", ".join(f"{r:.1f}" for r in by_hour))
    shown = [("last fit before the shift", f) for f in fits if f[0] < result.shift_time][-1:]
    for label, (when, fit) in [*shown, ("last fit", fits[-1])]:
        weights = fit.ranker.weights if fit.ranker is not None else {}
        print(f"  {label} (at {(when - T0) / 3600:.1f} h): {_fit_summary(fit.metrics, weights)}")
    return lifts


def _fit_summary(metrics: dict, weights: dict[str, float]) -> str:
    status = f"refused ({metrics['refused']})" if "refused" in metrics else "kept"
    text = f"{status}, {metrics.get('pages')} pages, {metrics.get('train_pairs')} pairs"
    for name, label in (("holdout_loss", "held-out pair log loss"), ("holdout_accuracy", "pair accuracy")):
        if name in metrics:
            text += f", {label} {metrics[name]:.3f} (relevance alone {metrics[name + '_relevance_only']:.3f})"
    if weights:
        top = sorted(weights.items(), key=lambda kv: -abs(kv[1]))[:6]
        text += "; weights " + ", ".join(f"{name} {value:+.2f}" for name, value in top)
    return text


def personal_lifts(result: PersonalResult, seed: int) -> dict[str, Lift]:
    """Personalised over non-personal per search, by visitor kind (sessions are the bootstrap blocks)."""
    lifts = {}
    for label, mask in (
        ("brand-loyal visitors, all searches", result.loyal),
        ("brand-loyal visitors, searches with a profile", result.loyal & result.with_profile),
        ("visitors with no preference", ~result.loyal),
    ):
        for metric, values in (("CTR", result.clicks), ("purchases", result.purchases)):
            treated, control = values["personalised"][mask], values["non-personal"][mask]
            lifts[f"{metric}, {label}"] = lift(treated, control, result.session[mask], seed)
    return lifts


def print_personal(result: PersonalResult, settings: PersonalSettings, seconds: float) -> dict[str, Lift]:
    lifts = personal_lifts(result, settings.seed)
    sessions = len(set(result.session.tolist()))
    print(
        f"\nPersonal: {len(result.session)} evaluated searches in {sessions} sessions ({result.brands} preferred "
        f"brands, brands={settings.brands}, brand lift x{settings.brand_lift:g}); {seconds:.0f} s"
    )
    print(f"  warm-up fit: {_fit_summary(result.fit_metrics, result.weights)}")
    print(
        f"  {'per search, personalised vs non-personal':<56} {'non-pers':>8} {'pers':>8} {'lift':>8}  95% CI  searches"
    )
    for label, value in lifts.items():
        print(_line(label, value))
    return lifts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=ShiftSettings.searches, help="searches per scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("shift", "personal"), help="run one scenario")
    parser.add_argument(
        "--brands", choices=("relevant", "any"), default="relevant", help="what ties a loyal visitor's brand to a query"
    )
    parser.add_argument(
        "--brand-lift", type=float, default=PersonalSettings.brand_lift, help="how strong the preference"
    )
    args = parser.parse_args(argv)
    if args.searches < 100:
        parser.error("--searches must be at least 100")
    started = time.perf_counter()
    world = demo_world()
    print(
        f"demo catalog: {len(world.searcher.cards)} products, {len(world.simulator.queries)} judged queries, "
        f"lexical stage 1 ({time.perf_counter() - started:.1f} s to load)"
    )
    if args.only in (None, "shift"):
        settings = ShiftSettings(searches=args.searches, seed=args.seed)
        started = time.perf_counter()
        result = run_shift(world, settings, progress=True)
        print_shift(result, settings, time.perf_counter() - started)
    if args.only in (None, "personal"):
        personal = PersonalSettings(
            searches=round(0.6 * args.searches), seed=args.seed, brands=args.brands, brand_lift=args.brand_lift
        )
        started = time.perf_counter()
        outcome = run_personal(world, personal, progress=True)
        print_personal(outcome, personal, time.perf_counter() - started)


if __name__ == "__main__":
    main()
