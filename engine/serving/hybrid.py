"""Hybrid candidate generation: lexical and dense lists, fused, then ranked on features.

The same feature code serves queries and builds the ranker's training data, so what the
ranker is fitted on is exactly what it sees at serving time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.serving.fusion import rank_by, reciprocal_rank_fusion
from engine.serving.ranker import FEATURES, LinearRanker

_POPULARITY_SCALE = math.log1p(1_000_000)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class CandidateSignals:
    """Per-product numbers the ranker may use besides retrieval scores."""

    rating: float | None
    rating_count: int
    title: str = ""
    # The version's click and purchase heads' probabilities (engine.serving.heads); 0 when the
    # version has no trained heads or the candidate was not among the scored top.
    click: float = 0.0
    purchase: float = 0.0


def _stem(word: str) -> str:
    """A crude plural fold so 'bottle' and 'bottles' meet from either side."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _title_match(words: set[str], title: str) -> float:
    """Share of the query's words found in the title (titles say what a product is)."""
    if not words:
        return 0.0
    title_words = {_stem(w) for w in _WORD.findall(title.lower())}
    return sum(1 for w in words if _stem(w) in title_words) / len(words)


def feature_matrix(
    query: str,
    ids: list[int],
    dense_hits: list[tuple[int, float]],
    lexical_hits: list[tuple[int, float]],
    signals: Mapping[int, CandidateSignals],
    dense_scores: Mapping[int, float] | None = None,
) -> np.ndarray:
    """Rows of FEATURES for the candidate ids.

    dense_scores may carry exact cosines for candidates the dense list missed; otherwise a
    candidate absent from a list scores 0 there.
    """
    dense = {**dict(dense_hits), **(dense_scores or {})}
    bm25 = dict(lexical_hits)
    top_bm25 = max(bm25.values(), default=0.0) or 1.0
    rrf = reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in lexical_hits]])
    in_dense = {i for i, _ in dense_hits}
    dense_rank = {pid: rank for rank, (pid, _) in enumerate(dense_hits, start=1)}
    lexical_rank = {pid: rank for rank, (pid, _) in enumerate(lexical_hits, start=1)}
    words = set(_WORD.findall(query.lower()))
    rows = np.zeros((len(ids), len(FEATURES)), dtype=np.float32)
    for row, pid in enumerate(ids):
        signal = signals.get(pid)
        rows[row] = (
            dense.get(pid, 0.0),
            bm25.get(pid, 0.0) / top_bm25,
            rrf.get(pid, 0.0) * 60.0,  # 60 = RRF_K: puts a rank-1 hit near 1.0
            10.0 / (10 + dense_rank[pid]) if pid in dense_rank else 0.0,  # steeper than RRF: top ranks count
            10.0 / (10 + lexical_rank[pid]) if pid in lexical_rank else 0.0,
            1.0 if pid in in_dense and pid in bm25 else 0.0,
            _title_match(words, signal.title) if signal else 0.0,
            (signal.rating or 0.0) / 5.0 if signal else 0.0,
            math.log1p(signal.rating_count) / _POPULARITY_SCALE if signal else 0.0,
            signal.click if signal else 0.0,
            signal.purchase if signal else 0.0,
        )
    return rows


def candidate_ids(dense_hits: list[tuple[int, float]], lexical_hits: list[tuple[int, float]]) -> list[int]:
    """The union of both lists, dense first, without duplicates."""
    return list(dict.fromkeys([i for i, _ in dense_hits] + [i for i, _ in lexical_hits]))


def fuse(
    query: str,
    dense_hits: list[tuple[int, float]],
    lexical_hits: list[tuple[int, float]],
    signals: Mapping[int, CandidateSignals],
    ranker: LinearRanker | None,
    dense_scores: Mapping[int, float] | None = None,
) -> list[tuple[int, float]]:
    """Order the union of both candidate lists: by the ranker when there is one, else by RRF."""
    if ranker is None:
        return rank_by(reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in lexical_hits]]))
    ids = candidate_ids(dense_hits, lexical_hits)
    scores = ranker.score(feature_matrix(query, ids, dense_hits, lexical_hits, signals, dense_scores))
    return rank_by(dict(zip(ids, scores.tolist(), strict=True)))
