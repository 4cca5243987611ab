"""What the Searcher holds of a product, and the helpers that read it: filters and embedding text."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from engine.ranking.context import ProductFacts
from engine.serving.bundle import ServingBundle
from engine.serving.hybrid import product_numbers, title_stems
from engine.serving.lexical import Filters, LexicalDoc
from engine.serving.product_text import product_text


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
    # The product's timeline, in epoch seconds, for the freshness signals (None: unknown / never).
    created_at: float | None = None
    price_dropped_at: float | None = None
    price_drop: float = 0.0  # fraction of the price taken off at the last cut
    restocked_at: float | None = None

    @cached_property
    def facts(self) -> ProductFacts:
        """Stage 2's view of the product, built once per card (cards are immutable; a change makes a new one)."""
        return ProductFacts(
            created_at=self.created_at,
            price_dropped_at=self.price_dropped_at,
            price_drop=self.price_drop,
            restocked_at=self.restocked_at,
            brand=self.brand,
            category=self.category,
            price=self.price,
        )

    @property
    def words(self) -> tuple[str, str, str, str, str]:
        """The fields a product is indexed and embedded from; a change elsewhere (price, stock,
        rating, stamps) needs neither a new vector nor a look at other queries' results."""
        return (self.title, self.brand, self.category, self.bullet_points, self.description)

    @cached_property
    def title_stems(self) -> frozenset[str]:
        """The title's folded words for the ranker's title_match feature, made once per card."""
        return title_stems(self.title)

    @cached_property
    def ranker_numbers(self) -> tuple[float, float]:
        """The ranker's rating and popularity columns, made once per card."""
        return product_numbers(self.rating, self.rating_count)

    def lexical_doc(self) -> LexicalDoc:
        return LexicalDoc(
            id=self.id,
            title=self.title,
            brand=self.brand,
            bullet_points=self.bullet_points,
            description=self.description,
            category=self.category,
            price=self.price,
            rating=self.rating,
        )


def passes(card: ProductCard, filters: Filters) -> bool:
    """Whether a product meets the filters (for candidates that did not come from the lexical index)."""
    if filters.brands and card.brand not in filters.brands:
        return False
    if filters.price_min is not None and (card.price is None or card.price < filters.price_min):
        return False
    if filters.price_max is not None and (card.price is None or card.price > filters.price_max):
        return False
    return filters.rating_min is None or (card.rating is not None and card.rating >= filters.rating_min)


def embed_cards(bundle: ServingBundle, cards: list[ProductCard]) -> None:
    """Embed products with the bundle's product encoder and store their vectors."""
    if cards:
        vectors = bundle.product_encoder().encode([card_text(c) for c in cards])
        bundle.vectors.upsert([c.id for c in cards], vectors)


def card_text(card: ProductCard) -> str:
    """The text a product is embedded from (the same builder the worker's batch embedding uses)."""
    return product_text(
        title=card.title,
        brand=card.brand,
        category=card.category,
        bullet_points=card.bullet_points,
        description=card.description,
    )
