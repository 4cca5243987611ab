"""Hybrid candidate generation: lexical and dense lists, fused, then ranked on features.

The same feature code serves queries and builds the ranker's training data, so what the
ranker is fitted on is exactly what it sees at serving time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

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

    @property
    def title_stems(self) -> frozenset[str]:
        return title_stems(self.title)

    @property
    def ranker_numbers(self) -> tuple[float, float]:
        return product_numbers(self.rating, self.rating_count)


class ProductSignals(Protocol):
    """What the ranker reads of a candidate: a CandidateSignals, or a ProductCard (its values made once)."""

    @property
    def title_stems(self) -> frozenset[str]: ...

    @property
    def ranker_numbers(self) -> tuple[float, float]: ...


def _stem(word: str) -> str:
    """A crude plural fold so 'bottle' and 'bottles' meet from either side."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def title_stems(title: str) -> frozenset[str]:
    """The folded words of a title, which the title_match feature compares a query's words with."""
    return frozenset(_stem(w) for w in _WORD.findall(title.lower()))


def product_numbers(rating: float | None, rating_count: int) -> tuple[float, float]:
    """The ranker's rating and popularity columns of a product, each in [0, 1]."""
    return (rating or 0.0) / 5.0, math.log1p(rating_count) / _POPULARITY_SCALE


def _title_matches(query: str, titles: list[frozenset[str]]) -> np.ndarray:
    """Per candidate, the share of the query's words found in its title (titles say what a product is)."""
    words = set(_WORD.findall(query.lower()))
    if not words:
        return np.zeros(len(titles))
    stems = [_stem(w) for w in words]  # one per word: two words of one stem both count
    distinct = frozenset(stems)
    if len(distinct) == len(stems):  # the usual case: one set intersection per candidate
        counts = np.fromiter((len(distinct & t) for t in titles), np.float64, len(titles))
    else:
        counts = np.fromiter((sum(stem in t for stem in stems) for t in titles), np.float64, len(titles))
    return counts / len(words)


def feature_matrix(
    query: str,
    ids: list[int],
    dense_hits: list[tuple[int, float]],
    lexical_hits: list[tuple[int, float]],
    signals: Mapping[int, ProductSignals],
    dense_scores: Mapping[int, float] | None = None,
    heads: Mapping[str, Mapping[int, float]] | None = None,
) -> np.ndarray:
    """Rows of FEATURES for the candidate ids, built a column at a time.

    dense_scores may carry exact cosines for candidates the dense list missed; otherwise a
    candidate absent from a list scores 0 there. The retrieval columns are written at the
    rows of each list's hits; the product columns read the candidates' signals, which may
    be the Searcher's cards themselves (title stems and numbers made once per card). The
    click and purchase columns come from `heads` when given (the heads' scores by product),
    else from each CandidateSignals.
    """
    n = len(ids)
    row_of = {pid: row for row, pid in enumerate(ids)}
    rows = np.zeros((n, len(FEATURES)), dtype=np.float32)
    col = _COLUMNS
    if n == 0:
        return rows

    def at(hits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, 1-based ranks, scores) of the hits that are candidates."""
        kept = [(row_of[pid], rank, score) for rank, (pid, score) in enumerate(hits, start=1) if pid in row_of]
        where, ranks, scores = zip(*kept, strict=True) if kept else ((), (), ())
        return np.array(where, dtype=np.intp), np.array(ranks, dtype=np.float64), np.array(scores, dtype=np.float64)

    dense_rows, dense_ranks, dense_values = at(dense_hits)
    lexical_rows, lexical_ranks, lexical_values = at(lexical_hits)
    rows[dense_rows, col["dense"]] = dense_values
    extra = [(row_of[pid], score) for pid, score in (dense_scores or {}).items() if pid in row_of]
    if extra:
        rows[[r for r, _ in extra], col["dense"]] = [score for _, score in extra]
    top_bm25 = max((score for _, score in lexical_hits), default=0.0) or 1.0
    rows[lexical_rows, col["bm25"]] = lexical_values / top_bm25
    rrf = reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in lexical_hits]])
    rows[:, col["rrf"]] = np.fromiter((rrf.get(pid, 0.0) for pid in ids), np.float64, n) * 60.0  # 60 = RRF_K
    rows[dense_rows, col["dense_rr"]] = 10.0 / (10 + dense_ranks)  # steeper than RRF: top ranks count
    rows[lexical_rows, col["lexical_rr"]] = 10.0 / (10 + lexical_ranks)
    both = np.zeros(n, dtype=bool)
    both[dense_rows] = True
    in_lexical = np.zeros(n, dtype=bool)
    in_lexical[lexical_rows] = True
    rows[both & in_lexical, col["in_both"]] = 1.0
    found = [signals.get(pid) for pid in ids]
    known = [row for row, s in enumerate(found) if s is not None]
    if not known:
        return rows
    where = np.array(known, dtype=np.intp)
    present = [found[row] for row in known]
    rows[where, col["title_match"]] = _title_matches(query, [s.title_stems for s in present])
    rows[np.ix_(where, [col["rating"], col["popularity"]])] = [s.ranker_numbers for s in present]
    for name in ("click", "purchase"):
        if heads is None:
            rows[where, col[name]] = [getattr(s, name, 0.0) for s in present]
        else:
            scored = [
                (row_of[pid], p) for pid, p in heads.get(name, {}).items() if pid in row_of and found[row_of[pid]]
            ]
            if scored:
                rows[[r for r, _ in scored], col[name]] = [p for _, p in scored]
    return rows


_COLUMNS = {name: index for index, name in enumerate(FEATURES)}


def candidate_ids(dense_hits: list[tuple[int, float]], lexical_hits: list[tuple[int, float]]) -> list[int]:
    """The union of both lists, dense first, without duplicates."""
    return list(dict.fromkeys([i for i, _ in dense_hits] + [i for i, _ in lexical_hits]))


def fuse(
    query: str,
    dense_hits: list[tuple[int, float]],
    lexical_hits: list[tuple[int, float]],
    signals: Mapping[int, ProductSignals],
    ranker: LinearRanker | None,
    dense_scores: Mapping[int, float] | None = None,
    heads: Mapping[str, Mapping[int, float]] | None = None,
) -> list[tuple[int, float]]:
    """Order the union of both candidate lists: by the ranker when there is one, else by RRF."""
    if ranker is None:
        return rank_by(reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in lexical_hits]]))
    ids = candidate_ids(dense_hits, lexical_hits)
    scores = ranker.score(feature_matrix(query, ids, dense_hits, lexical_hits, signals, dense_scores, heads))
    return rank_by(dict(zip(ids, scores.tolist(), strict=True)))
