"""Brand facet counts over the results a page ranks, so a facet never contradicts the grid.

The counts come from the ranked list the pages are cut from (stage 1's fused and filtered
candidates, sorted as asked), not from the lexical index alone: with a model version attached
the grid also holds dense-only matches that a lexical count never saw. A brand the shopper
has ticked counts in the filtered list (ticking "Apple (7)" shows 7 results); the other brands
count in the same search without the brand filter, so shoppers can see and switch brands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from engine.serving.cards import ProductCard

FACET_SIZE = 20


def brand_counts(ids: Iterable[int], cards: Mapping[int, ProductCard], size: int = FACET_SIZE) -> dict[str, int]:
    """Products per brand among `ids`, most first then by name, the top `size` (no brand: not counted)."""
    counts = Counter(cards[pid].brand for pid in ids if pid in cards and cards[pid].brand)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size])


def ranked_brand_facets(
    ranked: Sequence[tuple[int, float]],
    selected: Sequence[str],
    cards: Mapping[int, ProductCard],
    unfiltered: Callable[[], Sequence[tuple[int, float]]],
    size: int = FACET_SIZE,
) -> dict[str, int]:
    """The brand facet for a ranked list; `unfiltered()` ranks the same search without the brand filter."""
    if not selected:
        return brand_counts((pid for pid, _ in ranked), cards, size)
    chosen = brand_counts((pid for pid, _ in ranked), cards, len(selected))
    others = brand_counts((pid for pid, _ in unfiltered()), cards, size + len(selected))
    merged = {brand: n for brand, n in others.items() if brand not in selected}
    merged.update({brand: chosen.get(brand, 0) for brand in selected})
    return dict(sorted(merged.items(), key=lambda item: (-item[1], item[0]))[:size])
