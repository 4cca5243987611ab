"""Applying stage 2 to a search: context features for the head of the stage-1 list, then the re-rank.

Features are computed (and returned for logging) whenever a context is given, even with no
fitted ranker yet: the first fit needs pages logged before any ranker existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

from engine.ranking.board import SignalBoard
from engine.ranking.context import CONTEXT_FEATURES, Candidates, ContextSettings, ProductFacts, context_rows
from engine.ranking.context_ranker import ContextRanker, rerank
from engine.ranking.profile import ShopperProfile

CONTEXT_POOL = 100  # stage 2 re-orders this many of the best stage-1 candidates


class CardLike(Protocol):
    @property
    def facts(self) -> ProductFacts: ...


class VectorLookup(Protocol):
    def scores(self, query_vec: np.ndarray, ids: Sequence[int]) -> dict[int, float]: ...


@dataclass(frozen=True)
class SearchContext:
    """The moment and the shopper a search is answered for."""

    now: float  # epoch seconds: signals are decayed to this clock
    query_key: str = ""  # the normalized query, for "bought after this query"
    profile: ShopperProfile | None = None  # None: a new visitor, the non-personal ranking


@dataclass
class ContextResult:
    hits: list[tuple[int, float]]
    head: list[int] = field(default_factory=list)  # the candidates stage 2 featured, in stage-1 order
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, len(CONTEXT_FEATURES)), dtype=np.float32))
    explore_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))  # per head row
    applied: bool = False  # whether a fitted ranker re-ordered the head

    # The per-product views are built on first use: a search logs only its page's rows (row_of),
    # and building a hundred-entry dict of row views per search was a tenth of stage 2 (profiled).
    @cached_property
    def row_of(self) -> dict[int, int]:
        """product id -> its row of `matrix`."""
        return {pid: i for i, pid in enumerate(self.head)}

    @cached_property
    def features(self) -> dict[int, np.ndarray]:
        """product id -> its CONTEXT_FEATURES row."""
        return dict(zip(self.head, self.matrix, strict=True))

    @cached_property
    def explore(self) -> dict[int, float]:
        return dict(zip(self.head, self.explore_values.tolist(), strict=True))


def stage_two_candidates(
    hits: Sequence[tuple[int, float]], cards: Mapping[int, CardLike], pool: int = CONTEXT_POOL
) -> Candidates:
    """The head of a stage-1 list that stage 2 features (products with a card) and their facts."""
    head = [pid for pid, _ in hits[:pool] if pid in cards]
    return Candidates.of(head, [cards[pid].facts for pid in head])


def apply_context(
    hits: list[tuple[int, float]],
    cards: Mapping[int, CardLike],
    board: SignalBoard,
    ranker: ContextRanker | None,
    settings: ContextSettings,
    context: SearchContext,
    vectors: VectorLookup | None,
    pool: int = CONTEXT_POOL,
    candidates: Candidates | None = None,
) -> ContextResult:
    """Features for the head of `hits` (stage-1 order) and, with a ranker, the head re-ordered.

    `candidates`: stage_two_candidates(hits, cards, pool) for these very hits and pool, when the
    caller kept them from an earlier search of the same stage-1 result (they change only with the
    catalog); the tail past `pool` is taken from `hits`, so other hits or another pool would drop
    or repeat results.
    """
    if candidates is None:
        candidates = stage_two_candidates(hits, cards, pool)
    head = list(candidates.ids)
    if not head:
        return ContextResult(hits)
    profile = context.profile
    sims: dict[int, float] = {}
    if profile is not None and profile.vector is not None and vectors is not None:
        sims = vectors.scores(profile.vector, head)
    features, explore = context_rows(candidates, context.query_key, board, context.now, settings, profile, sims)
    result = ContextResult(hits, head=head, matrix=features, explore_values=explore)
    if ranker is None:
        return result
    scores = ranker.scores(features, explore)
    by_id = dict(zip(head, scores.tolist(), strict=True))
    reordered = [(pid, by_id[pid]) for pid in rerank(head, scores)]
    result.hits = reordered + [h for h in hits[pool:] if h[0] not in by_id]
    result.applied = True
    return result
