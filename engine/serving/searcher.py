"""The Searcher: the one search path shared by the storefront, the API and the eval CLI.

ProductCard, passes, embed_cards and card_text live in engine.serving.cards (re-exported here).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from engine.ranking.board import SignalBoard
from engine.ranking.context import Candidates, ContextSettings
from engine.ranking.context_ranker import ContextRanker
from engine.ranking.stage import ContextResult, SearchContext, apply_context
from engine.serving.bundle import ServingBundle
from engine.serving.cards import ProductCard, card_text, embed_cards, passes
from engine.serving.facets import ranked_brand_facets
from engine.serving.heads import candidate_head_scores
from engine.serving.hybrid import candidate_ids, feature_matrix, fuse
from engine.serving.lexical import Filters, LexicalIndex, LexicalResult
from engine.serving.result_cache import StageOne, StageOneCache

__all__ = [
    "SORTS",
    "Hit",
    "ProductCard",
    "SearchRequest",
    "SearchResponse",
    "Searcher",
    "card_text",
    "embed_cards",
    "passes",
]

SORTS = ("relevance", "price_asc", "price_desc", "rating")
# When sorting by price or rating, weak matches would flood the top; keep the clearly relevant.
SORT_RELEVANCE_FLOOR = 0.3
SORT_POOL = 100


@dataclass(frozen=True)
class SearchRequest:
    text: str = ""
    filters: Filters = field(default_factory=Filters)
    sort: str = "relevance"
    page: int = 1
    page_size: int = 24


@dataclass(frozen=True)
class Hit:
    card: ProductCard
    position: int  # 1-based over the whole result list, not the page
    score: float
    matches: bool = True  # it matches the query; False: a related product shown after the matches


@dataclass
class SearchResponse:
    hits: list[Hit]
    total: int  # how many products match the query (see Searcher.search)
    candidates: int
    fuzzy: bool
    ranker: str
    brand_counts: dict[str, int]
    model_version_id: int | None = None  # the version whose encoder ranked these results, if any
    context: ContextResult | None = None  # stage 2's features (to log) and whether it re-ordered
    related: int = 0  # results that do not match the query, listed after the matching ones
    # What the shop's query rules did (webapp.services.merchandising sets them after the search).
    imposed: dict[int, str] = field(default_factory=dict)  # product id -> "pin" or "boost"
    redirect: str | None = None
    rule_ids: tuple[int, ...] = ()


class Searcher:
    """Holds the catalog view and indexes in memory; updated in place as products change.

    A ServingBundle (a model version's ONNX encoder, vectors and ranker) may be attached and
    swapped at any time; each search reads the reference once, so a swap never mixes versions.
    Extra bundles (the versions of a running A/B experiment's variants) may be added; a search
    names one as an override, and catalog changes are embedded into every bundle held.
    """

    def __init__(self, candidates: int = 300, result_cache: int = 512) -> None:
        self.lexical = LexicalIndex()
        self.cards: dict[int, ProductCard] = {}
        self.candidates = candidates
        self.bundle: ServingBundle | None = None
        self.extra_bundles: dict[int, ServingBundle] = {}  # version id -> bundle (A/B variants)
        # Stage 2: decayed signals mirrored from the shared store, and the ranker fitted on logged feedback.
        self.board = SignalBoard()
        self.context_ranker: ContextRanker | None = None
        self.context_settings = ContextSettings()
        # Head queries repeat: their stage-1 results are kept until the catalog or a bundle changes.
        self.result_cache = StageOneCache(result_cache)
        # The cosine from which a product found only by meaning counts as matching the query
        # (fitted on the train half's judgments); None: only words make a match.
        self.match_floor: float | None = None
        self._lock = threading.Lock()

    def attach(self, bundle: ServingBundle | None) -> None:
        """Serve from this bundle from the next search on; embeds products it does not cover."""
        if bundle is not None:
            with self._lock:
                missing = [c for c in self.cards.values() if c.id not in bundle.vectors]
            embed_cards(bundle, missing)  # the slow part, outside the lock: syncs and searches go on
        with self._lock:
            # A sync that ran meanwhile embedded its products into the old bundle only: cover them too.
            if bundle is not None:
                embed_cards(bundle, [c for c in self.cards.values() if c.id not in bundle.vectors])
            self.bundle = bundle
            self.result_cache.invalidate()

    def add_bundle(self, bundle: ServingBundle) -> None:
        """Hold another version's bundle (for per-search overrides), kept in step with the catalog."""
        with self._lock:
            missing = [c for c in self.cards.values() if c.id not in bundle.vectors]
        embed_cards(bundle, missing)  # outside the lock, as in attach
        with self._lock:
            embed_cards(bundle, [c for c in self.cards.values() if c.id not in bundle.vectors])
            self.extra_bundles[bundle.version_id] = bundle
            self.result_cache.invalidate()

    def drop_bundle(self, version_id: int) -> None:
        """Stop holding an extra bundle (searches that already read it finish with it)."""
        with self._lock:
            self.extra_bundles.pop(version_id, None)
            self.result_cache.invalidate()

    def _bundles(self) -> list[ServingBundle]:
        """Every bundle held, one per vector index (a bundle and its copy in another mode share one)."""
        held: list[ServingBundle] = []
        for bundle in [self.bundle, *self.extra_bundles.values()]:
            if bundle is not None and all(bundle.vectors is not h.vectors for h in held):
                held.append(bundle)
        return held

    def apply_changes(self, cards: list[ProductCard], removed_ids: list[int]) -> int:
        """Add or replace products and drop removed ones; searches see them on return.

        Only a product whose words changed (or that a bundle lacks) is embedded again: a new
        price, stock or rating updates its card and index entry without the encoder, and
        forgets only the cached results it can reach.
        """
        with self._lock:
            changed = [c for c in cards if self.cards.get(c.id) != c]
            gone = [i for i in removed_ids if i in self.cards]
            if not changed and not gone:
                return 0
            reworded = {c.id for c in changed if c.id not in self.cards or self.cards[c.id].words != c.words}
            for bundle in self._bundles():
                # A product added or reworded after the version was built gets its vector now,
                # from the same encoder, so it is findable by meaning within the sync interval.
                embed_cards(bundle, [c for c in changed if c.id in reworded or c.id not in bundle.vectors])
                bundle.vectors.remove(gone)
            self.lexical.upsert([c.lexical_doc() for c in changed], removed_ids=gone)
            for card in changed:
                self.cards[card.id] = card
            for product_id in gone:
                del self.cards[product_id]
            if reworded or gone:
                self.result_cache.invalidate()  # new words can move any query
            else:
                self.result_cache.forget_products({c.id for c in changed})
            return len(changed) + len(gone)

    @property
    def mode(self) -> str:
        """The retrieval mode searches use now."""
        return self.bundle.retrieval_mode if self.bundle is not None else "lexical"

    def _dense(self, bundle: ServingBundle, text: str, filters: Filters, limit: int) -> list[tuple[int, float]]:
        vector = bundle.encoder.encode_query(text)
        if filters.is_empty():
            return [(pid, s) for pid, s in bundle.vectors.search(vector, limit) if pid in self.cards]
        hits = bundle.vectors.search(vector, limit * 3)  # filters drop some; look a little deeper
        return [(pid, s) for pid, s in hits if pid in self.cards and passes(self.cards[pid], filters)][:limit]

    def retrieve(
        self,
        text: str,
        filters: Filters | None = None,
        limit: int | None = None,
        mode: str | None = None,
        bundle: ServingBundle | None = None,
    ) -> tuple[list[tuple[int, float]], LexicalResult, str]:
        """Ranked (product id, score) candidates, the lexical result (facets, total) and the ranker used.

        bundle overrides the attached one for this search (an A/B variant's version); mode
        overrides the bundle's retrieval mode.
        """
        hits, result, ranker, _, _ = self._retrieve(text, filters or Filters(), limit, mode, bundle)
        return hits, result, ranker

    def _retrieve(
        self, text: str, filters: Filters, limit: int | None, mode: str | None, bundle: ServingBundle | None
    ) -> tuple[list[tuple[int, float]], LexicalResult, str, frozenset[int], frozenset[int]]:
        """retrieve()'s answer, every product it considered (what a change of numbers can reach), and the matching ones."""
        limit = limit or self.candidates
        bundle = bundle or self.bundle
        mode = mode or (bundle.retrieval_mode if bundle is not None else "lexical")
        result = self.lexical.search(text, filters, limit=limit)
        lexical_hits = [(pid, score) for pid, score in result.hits if pid in self.cards]
        lexical_ids = frozenset(pid for pid, _ in lexical_hits)
        if not text.strip():
            # Browsing without words: show what shoppers trust most first.
            ordered = sorted(lexical_hits, key=lambda h: -self.cards[h[0]].rating_count)
            return ordered, result, "popularity", lexical_ids, lexical_ids
        if mode == "lexical" or bundle is None:
            return lexical_hits, result, "lexical", lexical_ids, result.matching
        dense_hits = self._dense(bundle, text, filters, limit)
        considered = lexical_ids | {pid for pid, _ in dense_hits}
        floor = self.match_floor
        matching = result.matching | {p for p, score in dense_hits if floor is not None and score >= floor}
        if mode == "dense":
            return dense_hits, result, bundle.ranker_label(mode), considered, matching
        ranker = bundle.ranker if mode == "hybrid" else None  # "rrf" forces the fusion baseline
        heads, exact = self._heads_and_exact(bundle, text, dense_hits, lexical_hits) if ranker else ({}, None)
        fused = fuse(text, dense_hits, lexical_hits, self.cards, ranker, exact, heads)
        return fused[:limit], result, bundle.ranker_label(mode), considered, matching

    def _heads_and_exact(
        self, bundle: ServingBundle, text: str, dense_hits: list, lexical_hits: list
    ) -> tuple[dict[str, dict[int, float]], dict[int, float]]:
        """The heads' scores by product and the exact cosines of the lexical hits (the cards give the rest)."""
        query = bundle.encoder.encode_query(text)  # cached: the dense search encoded it already
        heads = candidate_head_scores(bundle.heads, bundle.ranker, bundle.vectors, query, dense_hits, lexical_hits)
        exact = bundle.vectors.scores(query, [pid for pid, _ in lexical_hits])
        return heads, exact

    def candidate_features(self, text: str, limit: int | None = None) -> tuple[list[int], np.ndarray]:
        """The hybrid candidates of a query and their ranker features (to fit a ranker on labels)."""
        bundle = self.bundle
        if bundle is None:
            raise RuntimeError("candidate features need a model version attached")
        limit = limit or self.candidates
        lexical_hits = [(p, s) for p, s in self.lexical.search(text, limit=limit).hits if p in self.cards]
        dense_hits = self._dense(bundle, text, Filters(), limit)
        heads, exact = self._heads_and_exact(bundle, text, dense_hits, lexical_hits)
        ids = candidate_ids(dense_hits, lexical_hits)
        return ids, feature_matrix(text, ids, dense_hits, lexical_hits, self.cards, exact, heads)

    def _sorted(self, hits: list[tuple[int, float]], sort: str, ranker: str) -> list[tuple[int, float]]:
        if sort == "relevance" or not hits:
            return hits
        if ranker == "lexical":
            top = max(score for _, score in hits)
            kept = [h for h in hits if h[1] >= SORT_RELEVANCE_FLOOR * top] if top > 0 else hits
        else:
            kept = hits[:SORT_POOL]  # model scores have no absolute scale; keep the best few
        if sort == "rating":
            return sorted(kept, key=lambda h: (-(self.cards[h[0]].rating or 0), -self.cards[h[0]].rating_count))
        priced = [h for h in kept if self.cards[h[0]].price is not None]
        unpriced = [h for h in kept if self.cards[h[0]].price is None]
        priced.sort(key=lambda h: self.cards[h[0]].price, reverse=(sort == "price_desc"))
        return priced + unpriced  # unknown prices go last either way

    def search(
        self,
        request: SearchRequest,
        bundle: ServingBundle | None = None,
        mode: str | None = None,
        context: SearchContext | None = None,
        arrange: Callable[[list[tuple[int, float]]], list[tuple[int, float]]] | None = None,
    ) -> SearchResponse:
        """Retrieve, sort and cut one page of results (bundle and mode: as retrieve's overrides).

        With a context, stage 2 computes the head's context features (returned for logging)
        and, once a context ranker is fitted, re-orders the head by them. `arrange` re-orders
        the whole ranked list before it is cut (the shop's query rules, engine.merchandising).
        """
        bundle = bundle or self.bundle  # read once: the version named in the response is the one used
        first = self._stage_one(request.text, request.filters, mode, bundle)
        hits, ranker = list(first.hits), first.ranker
        staged = None
        if context is not None and request.sort == "relevance" and request.text.strip():
            staged = self.contextualize(hits, context, bundle, first.stage_two(self.cards))
            hits = staged.hits
        ordered = self._sorted(hits, request.sort, ranker)
        # Matching products first, then the related ones (found by one word, or only by meaning).
        matching = first.matching
        matched = [h for h in ordered if h[0] in matching]
        if len(matched) < len(ordered):
            ordered = matched + [h for h in ordered if h[0] not in matching]
        if arrange is not None:
            ordered = arrange(ordered)
        start = (request.page - 1) * request.page_size
        page = [
            Hit(card=self.cards[pid], position=start + offset + 1, score=score, matches=pid in matching)
            for offset, (pid, score) in enumerate(ordered[start : start + request.page_size])
        ]
        shown_matching = sum(1 for pid, _ in ordered if pid in matching)
        # Stage 1's count reaches past the candidates cut; a sort keeps only the clearly relevant.
        total = max(first.matching_total, shown_matching) if request.sort == "relevance" else shown_matching

        def unbranded() -> list[tuple[int, float]]:  # the brand facet's other brands (engine.serving.facets)
            other = self._stage_one(request.text, replace(request.filters, brands=()), mode, bundle)
            return self._sorted(list(other.hits), request.sort, other.ranker)

        return SearchResponse(
            hits=page,
            total=total,
            candidates=len(ordered),
            fuzzy=first.fuzzy,
            ranker=ranker,
            brand_counts=ranked_brand_facets(ordered, request.filters.brands, self.cards, unbranded),
            model_version_id=bundle.version_id if bundle is not None and ranker.endswith(f":{bundle.name}") else None,
            context=staged,
            related=len(ordered) - shown_matching,
        )

    def _stage_one(self, text: str, filters: Filters, mode: str | None, bundle: ServingBundle | None) -> StageOne:
        """retrieve()'s answer for a search, from the result cache when the same search ran since the last change."""
        mode = mode or (bundle.retrieval_mode if bundle is not None else "lexical")
        key = (text, filters, mode, None if bundle is None else (id(bundle), bundle.version_id))
        cached = self.result_cache.get(key)
        if cached is not None:
            return cached
        generation = self.result_cache.generation  # read before: a change meanwhile keeps this result out
        hits, result, ranker, considered, matching = self._retrieve(text, filters, None, mode, bundle)
        numbers = not text.strip() or filters.reads_numbers()  # browsing orders by rating counts
        found = StageOne(
            tuple(hits),
            result.total,
            result.fuzzy,
            result.brand_counts,
            ranker,
            considered,
            numbers,
            matching=matching,
            # Words' matches (counted past the cut) and those only meaning found above the floor.
            matching_total=result.matching_total + len(matching - result.matching) if text.strip() else result.total,
        )
        self.result_cache.put(key, found, generation)
        return found

    def contextualize(
        self,
        hits: list[tuple[int, float]],
        context: SearchContext,
        bundle: ServingBundle | None = None,
        candidates: Candidates | None = None,
    ) -> ContextResult:
        """Stage 2 over stage-1 hits: context features for the head, re-ordered once a ranker is fitted."""
        vectors = bundle.vectors if bundle is not None else None
        ranker, settings = self.context_ranker, self.context_settings
        return apply_context(hits, self.cards, self.board, ranker, settings, context, vectors, candidates=candidates)
