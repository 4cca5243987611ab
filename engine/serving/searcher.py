"""The Searcher: the one search path shared by the storefront, the API and the eval CLI."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from engine.serving.lexical import Filters, LexicalDoc, LexicalIndex, LexicalResult

SORTS = ("relevance", "price_asc", "price_desc", "rating")
# When sorting by price or rating, weak matches would flood the top; keep the clearly relevant.
SORT_RELEVANCE_FLOOR = 0.3


@dataclass(frozen=True)
class ProductCard:
    """What a results page shows of a product, plus the text the index reads."""

    id: int
    external_id: str
    title: str
    brand: str = ""
    price: float | None = None
    rating: float | None = None
    rating_count: int = 0
    image_url: str = ""
    category: str = ""
    bullet_points: str = ""
    description: str = ""

    def lexical_doc(self) -> LexicalDoc:
        return LexicalDoc(id=self.id, title=self.title, brand=self.brand, bullet_points=self.bullet_points,
                          description=self.description, category=self.category, price=self.price,
                          rating=self.rating)


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


@dataclass
class SearchResponse:
    hits: list[Hit]
    total: int
    candidates: int
    fuzzy: bool
    ranker: str
    brand_counts: dict[str, int]


class Searcher:
    """Holds the catalog view and indexes in memory; updated in place as products change."""

    def __init__(self, candidates: int = 300) -> None:
        self.lexical = LexicalIndex()
        self.cards: dict[int, ProductCard] = {}
        self.candidates = candidates
        self._lock = threading.Lock()

    def apply_changes(self, cards: list[ProductCard], removed_ids: list[int]) -> int:
        """Add or replace products and drop removed ones; searches see them on return."""
        with self._lock:
            changed = [c for c in cards if self.cards.get(c.id) != c]
            gone = [i for i in removed_ids if i in self.cards]
            if not changed and not gone:
                return 0
            self.lexical.upsert([c.lexical_doc() for c in changed], removed_ids=gone)
            for card in changed:
                self.cards[card.id] = card
            for product_id in gone:
                del self.cards[product_id]
            return len(changed) + len(gone)

    def retrieve(self, text: str, filters: Filters | None = None, limit: int | None = None
                 ) -> tuple[list[tuple[int, float]], LexicalResult]:
        """Ranked (product id, score) candidates for a query, before sorting and paging."""
        result = self.lexical.search(text, filters, limit=limit or self.candidates)
        hits = [(pid, score) for pid, score in result.hits if pid in self.cards]
        if not text.strip():
            # Browsing without words: show what shoppers trust most first.
            hits.sort(key=lambda h: -self.cards[h[0]].rating_count)
        return hits, result

    def _sorted(self, hits: list[tuple[int, float]], sort: str) -> list[tuple[int, float]]:
        if sort == "relevance" or not hits:
            return hits
        top = max(score for _, score in hits)
        kept = [h for h in hits if h[1] >= SORT_RELEVANCE_FLOOR * top] if top > 0 else hits
        if sort == "rating":
            return sorted(kept, key=lambda h: (-(self.cards[h[0]].rating or 0), -self.cards[h[0]].rating_count))
        priced = [h for h in kept if self.cards[h[0]].price is not None]
        unpriced = [h for h in kept if self.cards[h[0]].price is None]
        priced.sort(key=lambda h: self.cards[h[0]].price, reverse=(sort == "price_desc"))
        return priced + unpriced  # unknown prices go last either way

    def search(self, request: SearchRequest) -> SearchResponse:
        """Retrieve, sort and cut one page of results."""
        hits, result = self.retrieve(request.text, request.filters)
        ordered = self._sorted(hits, request.sort)
        start = (request.page - 1) * request.page_size
        page = [
            Hit(card=self.cards[pid], position=start + offset + 1, score=score)
            for offset, (pid, score) in enumerate(ordered[start:start + request.page_size])
        ]
        return SearchResponse(hits=page, total=result.total if request.sort == "relevance" else len(ordered),
                              candidates=len(ordered), fuzzy=result.fuzzy, ranker="lexical",
                              brand_counts=result.brand_counts)

