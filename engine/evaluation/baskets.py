"""Simulated shopping baskets for the recommendation bench: who bought X also wants X's complements and substitutes.

An extension of the search simulator (engine.evaluation.simulator) to what happens after a
product is chosen. The relations come from graded judgments of one split's queries only (the
demo's train half; the test half is for reporting): the products judged Exact or Substitute
for a query substitute each other, and its Complement products complement its Exact ones.
A session starts with a product drawn by a skewed popularity, then adds, one by one, a
complement of the last product, a substitute of it, or an unrelated popular product.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from engine.evaluation.judgments import Judgments, Query

EXACT, SUBSTITUTE, COMPLEMENT = 1.0, 0.1, 0.01  # the ESCI gains (engine.evaluation.judgments)


@dataclass(frozen=True)
class Relations:
    complements: dict[str, tuple[str, ...]]
    substitutes: dict[str, tuple[str, ...]]

    def products(self) -> list[str]:
        return sorted(set(self.complements) | set(self.substitutes))


def relations_from(queries: Iterable[Query], judgments: Judgments, texts: set[str]) -> Relations:
    """Complements and substitutes from the judgments of the queries whose text is in `texts`."""
    complements: dict[str, set[str]] = defaultdict(set)
    substitutes: dict[str, set[str]] = defaultdict(set)
    for query in queries:
        if query.text not in texts:
            continue
        gains = judgments.gains(query.qid)
        exact = {doc for doc, gain in gains.items() if gain >= EXACT}
        similar = exact | {doc for doc, gain in gains.items() if SUBSTITUTE <= gain < EXACT}
        extra = {doc for doc, gain in gains.items() if COMPLEMENT <= gain < SUBSTITUTE}
        for doc in similar:
            substitutes[doc] |= similar - {doc}
        for doc in exact:
            complements[doc] |= extra
    return Relations(
        {k: tuple(sorted(v)) for k, v in complements.items() if v},
        {k: tuple(sorted(v)) for k, v in substitutes.items() if v},
    )


@dataclass(frozen=True)
class BasketModel:
    complement: float = 0.45  # the next product is a complement of the last one (when it has any)
    substitute: float = 0.35  # ... a substitute of it (else an unrelated popular product)
    length: tuple[int, int] = (2, 4)  # products per session, inclusive
    zipf: float = 1.1  # popularity skew of first and unrelated products


def simulate_baskets(
    relations: Relations, sessions: int, seed: int, model: BasketModel | None = None
) -> list[list[str]]:
    """`sessions` baskets of distinct products, each in the order carted."""
    model = model or BasketModel()
    rng = np.random.default_rng(seed)
    products = relations.products()
    order = np.random.default_rng(0).permutation(len(products))  # the popularity ranking: fixed across seeds
    weights = np.empty(len(products))
    weights[order] = 1.0 / np.arange(1, len(products) + 1) ** model.zipf
    weights /= weights.sum()
    out = []
    for _ in range(sessions):
        size = int(rng.integers(model.length[0], model.length[1] + 1))
        basket = [products[int(rng.choice(len(products), p=weights))]]
        while len(basket) < size:
            last, draw = basket[-1], rng.random()
            pool: tuple[str, ...] = ()
            if draw < model.complement:
                pool = relations.complements.get(last, ())
            elif draw < model.complement + model.substitute:
                pool = relations.substitutes.get(last, ())
            pool = tuple(p for p in pool if p not in basket)
            nxt = pool[int(rng.integers(len(pool)))] if pool else products[int(rng.choice(len(products), p=weights))]
            if nxt not in basket:
                basket.append(nxt)
        out.append(basket)
    return out
