"""A bounded cache of stage-1 results (retrieval, fusion, facets) for repeated queries.

Stage 1 depends only on the query, the filters, the catalog held in memory and the model
version serving; it does not depend on time or on the shopper. So a head query's candidates
can be reused until the catalog or the bundles change, while stage 2 (signals, freshness,
the shopper's profile) still runs on every search: results stay fresh, the costly part
(query encoding, vector and BM25 search, heads, fusion, brand facets) runs once.

Invalidation is by generation: every catalog or bundle change bumps it, and a result
computed while a change happened is not stored (it may mix both states). A change to a
product's words (or an added or removed product) can move any query, so it empties the
cache; a change to its numbers only (price, rating, stock stamps) drops just the entries it
can reach (`forget_products`): those that considered the product, those whose filters read
numbers, and browsing without words (ordered by rating counts).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from engine.ranking.context import Candidates
from engine.ranking.stage import CONTEXT_POOL, CardLike, stage_two_candidates


@dataclass(frozen=True)
class StageOne:
    """What a search needs from stage 1: the ordered candidates and the lexical totals and facets."""

    hits: tuple[tuple[int, float], ...]  # (product id, score), best first; a tuple so no caller can edit it
    total: int
    fuzzy: bool
    brand_counts: dict[str, int]
    ranker: str
    # Every product stage 1 considered (dense and lexical candidates, before the cut), and
    # whether its filters read price or rating: what a change of numbers can reach.
    considered: frozenset[int] = frozenset()
    reads_numbers: bool = True
    # The hits that match the query (engine.serving.lexical's matching, and dense hits above the
    # Searcher's match_floor), and how many products match by their words.
    matching: frozenset[int] = frozenset()
    matching_total: int = 0
    # Stage 2's candidates and their catalog facts per pool size, made by the first search that
    # needs them: they change only with the catalog, and a catalog change empties the cache.
    _stage_two: dict[int, Candidates] = field(default_factory=dict, compare=False, repr=False)

    def stage_two(self, cards: Mapping[int, CardLike], pool: int = CONTEXT_POOL) -> Candidates:
        """stage_two_candidates for these hits, kept with them for the searches that repeat them."""
        found = self._stage_two.get(pool)
        if found is None:
            found = self._stage_two[pool] = stage_two_candidates(self.hits, cards, pool)
        return found


class StageOneCache:
    """Thread-safe LRU of StageOne results keyed by (query, filters, mode, bundle); size 0 disables it."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, StageOne] = OrderedDict()
        self._generation = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def generation(self) -> int:
        """Read before computing a result; pass it to put() so a result from before a change is dropped."""
        return self._generation

    def get(self, key: Hashable) -> StageOne | None:
        """The cached result for key, freshly used, or None."""
        if self.size <= 0:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, value: StageOne, generation: int) -> None:
        """Store value unless the catalog or bundles changed since `generation` was read."""
        if self.size <= 0:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        """Forget every result: the catalog or the serving bundles changed."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def forget_products(self, product_ids: set[int]) -> int:
        """Forget the results a change of these products' numbers (not words) can alter; returns how many."""
        with self._lock:
            self._generation += 1
            stale = [k for k, v in self._entries.items() if v.reads_numbers or not product_ids.isdisjoint(v.considered)]
            for key in stale:
                del self._entries[key]
            return len(stale)

    def __len__(self) -> int:
        return len(self._entries)
