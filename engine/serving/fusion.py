"""Fusing candidate lists from several retrievers."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of the very top ranks


def reciprocal_rank_fusion(ranked_lists: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Score each id by the sum of 1 / (k + rank) over the lists it appears in (rank from 1)."""
    scores: dict[int, float] = {}
    for ranked in ranked_lists:
        for rank, item in enumerate(ranked, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


def rank_by(scores: dict[int, float]) -> list[tuple[int, float]]:
    """Ids ordered by descending score, ties broken by id for determinism."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
