"""The click model on simulated traffic with known truth, with and without exploration.

    .venv/bin/python bench/learning_loop.py --scenario click-model [--searches 6000] [--seed 1]

Shoppers follow the simulator's model (engine.evaluation.simulator.ShopperModel: examine
position k with probability (1/k)^1, click an examined result by its ESCI grade). Each
train-half demo query has one fixed ranking of its judged products (a shop whose ranking does
not change), 24 to a page. Settings: no position variation; exploration on a share of pages
(engine.ranking.exploration's random adjacent swaps, as KAIROS_EXPLORATION_SHARE sets it).
For each, the PBM fit (engine.training.click_model) against the truth at ranks 1-10, its
identification report, and what fine-tuning would use (the fit if identified, else 1/k).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

import numpy as np

from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_judgments, read_esci_queries
from engine.evaluation.simulator import ShopperModel
from engine.evaluation.split import load_split
from engine.ranking.exploration import adjacent_swaps
from engine.training.click_model import fit_pbm, identified_or_curve

PAGE = 24


@dataclass(frozen=True)
class Shown:
    product: str
    position: int


def simulate(searches: int, share: float, seed: int) -> tuple[list, list, list, list]:
    """Impressions (query, product, position, clicked) of `searches` simulated pages."""
    judgments, shopper = read_esci_judgments(DEMO_JUDGMENTS), ShopperModel()
    train = load_split().texts("train")
    queries = [q for q in read_esci_queries(DEMO_JUDGMENTS) if q.text in train]
    rankings = {q.qid: list(judgments.grades[q.qid])[:PAGE] for q in queries}
    rng, swaps = np.random.default_rng(seed), random.Random(seed)
    rows: tuple[list, list, list, list] = ([], [], [], [])
    for _ in range(searches):
        query = queries[int(rng.integers(len(queries)))]
        page = [Shown(p, k) for k, p in enumerate(rankings[query.qid], start=1)]
        page = adjacent_swaps(page, share, swaps) or page
        for hit in page:
            gain = judgments.gain(judgments.grades[query.qid][hit.product])
            clicked = rng.random() < shopper.examination(hit.position) and rng.random() < shopper.click_probability(
                gain
            )
            rows[0].append(query.qid)
            rows[1].append(hit.product)
            rows[2].append(hit.position)
            rows[3].append(bool(clicked))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="click model recovery with and without exploration")
    parser.add_argument("--searches", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shares", default="0,0.1,0.3,1.0", help="exploration shares of pages to compare")
    args = parser.parse_args(argv)
    truth = 1.0 / np.arange(1, 11)
    print(f"{args.searches} searches, truth (1/k): " + " ".join(f"{v:.3f}" for v in truth))
    for share in (float(s) for s in args.shares.split(",")):
        model = fit_pbm(*simulate(args.searches, share, args.seed), max_position=PAGE)
        fitted, used = model.relative()[:10], identified_or_curve(model, 1.0)
        error = np.abs(fitted / truth - 1)
        ident = model.identification
        print(
            f"exploration {share:>4.0%}: fitted "
            + " ".join(f"{v:.3f}" for v in fitted)
            + f" | worst rank error {error.max():.1%} (rank {int(error.argmax()) + 1}), ranks within 10%: "
            f"{int((error <= 0.10).sum())}/10 | varied pairs {ident.varied_share:.1%}, converged {ident.converged}, "
            f"half-data change {ident.instability if ident.instability is not None else float('nan'):.1%},"
            f" identified {ident.identified} -> uses {used.source}"
        )


if __name__ == "__main__":
    main()
