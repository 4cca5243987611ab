"""A small exploration policy that makes position bias identifiable: random adjacent swaps.

On a configured share of result pages, each adjacent pair (k, k+1) of one parity (odd or
even k, chosen per page) is swapped with probability 1/2 (Joachims et al., 2017's swap
interventions; Agarwal et al., WSDM 2019). Position numbers stay where they are, products
move by at most one place, so the page stays nearly as good, while the same product is
logged at neighbouring positions: that is what lets the click model tell examination from
attractiveness. Pages so treated are logged with the ranker name suffixed EXPLORED.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

EXPLORED = "+swap"


class Shown(Protocol):
    position: int


H = TypeVar("H", bound=Shown)


def adjacent_swaps(hits: Sequence[H], share: float, rng: random.Random) -> list[H] | None:
    """The page with random adjacent swaps on `share` of pages; None when this page is left alone."""
    if share <= 0 or len(hits) < 2 or rng.random() >= share:
        return None
    order = list(hits)
    for k in range(rng.randrange(2), len(order) - 1, 2):
        if rng.random() < 0.5:
            order[k], order[k + 1] = order[k + 1], order[k]
    return [replace(hit, position=original.position) for hit, original in zip(order, hits, strict=True)]
