"""Seeded batch plans for fine-tuning (numpy only): which pairs and extra negatives go together.

A query's pairs are split into small groups that each mix its positives with its
examined-but-skipped products, so every group brings hard negatives for its own query
into the in-batch softmax; groups of different queries fill a batch, and a few random
catalog products are added as easy negatives. The whole plan, all epochs, is made up
front from the seed, so a run resumed at step n sees exactly the batches it would have.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.training.dataset import PairExample


@dataclass(frozen=True)
class BatchPlan:
    rows: tuple[int, ...]  # indices into the examples; row i is (query i, product i)
    extra_products: tuple[int, ...]  # product ids used only as extra negatives


def _query_groups(indices: list[int], examples: Sequence[PairExample], size: int, rng: np.random.Generator):
    positives = [i for i in indices if examples[i].grade > 0]
    negatives = [i for i in indices if examples[i].grade <= 0]
    rng.shuffle(positives)
    rng.shuffle(negatives)
    ordered = positives + negatives
    count = max(1, -(-len(ordered) // size))
    # Round-robin over the positives-first order gives each group its share of both kinds.
    return [ordered[g::count] for g in range(count)]


def plan_batches(
    examples: Sequence[PairExample],
    catalog: Sequence[int],
    batch_size: int,
    pairs_per_query: int,
    extra_negatives: int,
    epochs: int,
    seed: int,
) -> list[BatchPlan]:
    """Every batch of every epoch, in order; groups without a positive are kept (click head)."""
    if batch_size < 2 or pairs_per_query < 1:
        raise ValueError("batch_size must be at least 2 and pairs_per_query at least 1")
    rng = np.random.default_rng(seed)
    by_query: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_query[example.query].append(index)
    queries = sorted(by_query)
    catalog_ids = np.asarray(sorted(set(catalog)), dtype=np.int64)
    plans: list[BatchPlan] = []
    for _ in range(epochs):
        groups = [
            g for q in queries for g in _query_groups(by_query[q], examples, min(pairs_per_query, batch_size), rng)
        ]
        order = rng.permutation(len(groups))
        current: list[int] = []
        for g in order:
            if current and len(current) + len(groups[g]) > batch_size:
                plans.append(_finish(current, examples, catalog_ids, extra_negatives, rng))
                current = []
            current.extend(groups[g])
        if current:
            plans.append(_finish(current, examples, catalog_ids, extra_negatives, rng))
    return plans


def _finish(
    rows: list[int], examples: Sequence[PairExample], catalog: np.ndarray, extra: int, rng: np.random.Generator
) -> BatchPlan:
    taken = {examples[i].product_id for i in rows}
    extras: list[int] = []
    if extra > 0 and len(catalog):
        for pid in rng.choice(catalog, size=min(len(catalog), extra + len(taken)), replace=False):
            if int(pid) not in taken and len(extras) < extra:
                extras.append(int(pid))
    return BatchPlan(rows=tuple(rows), extra_products=tuple(extras))
