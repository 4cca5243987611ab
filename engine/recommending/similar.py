"""Similar products: nearest neighbours of a product's embedding in the active model version.

Near-duplicates (the same title folded to letters and digits) and the product itself are
left out, no brand fills more than `per_brand` places, and only buyable products appear.
Without a model version (a lexical-only catalog) or a vector for the product, the same
top-level category's bestsellers stand in, so the list still answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.ranking.board import SignalBoard
from engine.ranking.context import top_category
from engine.recommending.items import Recommended, bestsellers, diversified, title_key
from engine.serving.cards import ProductCard
from engine.serving.vectors import VectorIndex

DEPTH = 8  # neighbours read per place asked for: duplicates, brand caps and unbuyable ones drop some


def similar(
    anchor: int,
    cards: Mapping[int, ProductCard],
    vectors: VectorIndex | None,
    board: SignalBoard,
    now: float,
    limit: int,
    per_brand: int = 2,
    exclude: set[int] | None = None,
) -> list[Recommended]:
    """Up to `limit` products like `anchor`, best first (see the module docstring)."""
    card = cards.get(anchor)
    skip = {anchor, *(exclude or ())}
    titles = {title_key(card.title)} if card is not None else set()
    if vectors is not None and card is not None:
        present, matrix = vectors.lookup([anchor])
        if present:
            neighbours = vectors.search(matrix[0], limit * DEPTH + 1)
            found = diversified(neighbours, cards, limit, per_brand, skip, titles, source="similar")
            if found:
                return found
    category = top_category(card.category) if card is not None else ""
    return diversified(bestsellers(cards, board, now, category), cards, limit, per_brand, skip, titles, "bestsellers")
