"""The ranker's column-wise features equal the per-candidate loop they replace, on the demo catalog.

The reference below is the loop the serving path ran before (one row per candidate, the
title's words split and stemmed per candidate); it lives only here, as the oracle.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from engine.catalog.readers import read_catalog
from engine.evaluation.judgments import read_esci_queries
from engine.serving.fusion import reciprocal_rank_fusion
from engine.serving.hybrid import _POPULARITY_SCALE, _WORD, CandidateSignals, _stem, candidate_ids, feature_matrix
from engine.serving.lexical import LexicalIndex
from engine.serving.ranker import FEATURES
from engine.serving.searcher import ProductCard
from webapp.config import PROJECT_ROOT


def _title_match(words: set[str], title: str) -> float:
    if not words:
        return 0.0
    title_words = {_stem(w) for w in _WORD.findall(title.lower())}
    return sum(1 for w in words if _stem(w) in title_words) / len(words)


def reference_matrix(query, ids, dense_hits, lexical_hits, signals, dense_scores=None) -> np.ndarray:
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
            rrf.get(pid, 0.0) * 60.0,
            10.0 / (10 + dense_rank[pid]) if pid in dense_rank else 0.0,
            10.0 / (10 + lexical_rank[pid]) if pid in lexical_rank else 0.0,
            1.0 if pid in in_dense and pid in bm25 else 0.0,
            _title_match(words, signal.title) if signal else 0.0,
            (signal.rating or 0.0) / 5.0 if signal else 0.0,
            math.log1p(signal.rating_count) / _POPULARITY_SCALE if signal else 0.0,
            signal.click if signal else 0.0,
            signal.purchase if signal else 0.0,
        )
    return rows


@pytest.fixture(scope="module")
def demo():
    path = PROJECT_ROOT / "data" / "esci-us-sample" / "esci_us_ecommerce_shrunk.ndjson.zip"
    records = [line.record for line in read_catalog(path) if line.record is not None]
    cards = {
        n: ProductCard(n, r.external_id, r.title, r.brand, r.price, r.rating, r.rating_count or 0)
        for n, r in enumerate(records, start=1)
    }
    index = LexicalIndex()
    index.upsert([c.lexical_doc() for c in cards.values()])
    return cards, index


def test_vectorized_features_equal_the_per_candidate_loop_on_the_demo_catalog(demo):
    cards, index = demo
    rng = random.Random(7)
    ids_all = list(cards)
    compared = 0
    for query in read_esci_queries():
        lexical = index.search(query.text, limit=300).hits
        # A dense list overlapping the lexical one, with cosines, as the vector index returns them.
        pool = rng.sample(ids_all, 250) + [pid for pid, _ in lexical[:50]]
        dense = sorted(((pid, rng.uniform(-0.2, 0.9)) for pid in dict.fromkeys(pool)), key=lambda h: -h[1])[:300]
        ids = candidate_ids(dense, lexical)
        scored = {pid: (rng.random(), rng.random()) for pid in rng.sample(ids, min(50, len(ids)))}
        exact = {pid: rng.uniform(-0.2, 0.9) for pid, _ in lexical[:40]}
        held = [pid for pid in ids if pid % 17]  # a few candidates without signals
        signals = {
            pid: CandidateSignals(
                cards[pid].rating, cards[pid].rating_count, cards[pid].title, *scored.get(pid, (0, 0))
            )
            for pid in held
        }
        expected = reference_matrix(query.text, ids, dense, lexical, signals, exact)
        np.testing.assert_array_equal(feature_matrix(query.text, ids, dense, lexical, signals, exact), expected)
        # As the Searcher calls it: its cards as the signals, the heads' scores beside them.
        heads = {name: {pid: pair[k] for pid, pair in scored.items()} for k, name in enumerate(("click", "purchase"))}
        by_card = {pid: cards[pid] for pid in held}
        served = feature_matrix(query.text, ids, dense, lexical, by_card, exact, heads)
        np.testing.assert_array_equal(served, expected)
        compared += len(ids)
    assert compared > 150 * 250


def test_titles_without_precomputed_stems_and_edge_cases():
    signals = {1: CandidateSignals(4.0, 3, "Steel Water Bottles"), 2: CandidateSignals(None, 0, "")}
    for query in ("water bottle", "", "bottles bottle", "!!"):
        for ids, dense, lexical in (([1, 2], [(1, 0.5)], [(2, 3.0)]), ([], [], []), ([2], [(1, 0.5)], [])):
            expected = reference_matrix(query, ids, dense, lexical, signals)
            np.testing.assert_array_equal(feature_matrix(query, ids, dense, lexical, signals), expected)
