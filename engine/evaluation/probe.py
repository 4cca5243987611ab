"""A version's quality probe: dense NDCG@10 over a handful of train-half labelled queries.

The build records the figure with the version (PROBE_METRIC); activation measures it again
on the artifacts it is about to serve and refuses a version clearly below its own figure:
artifacts that are readable but wrong (embeddings shifted by a row, a swapped file) score
well below what the same version scored when it was built. Dense retrieval reads exactly
the encoder and the embeddings, the artifacts a wrong build or copy gets wrong. The test
half is never read here: only train-half queries choose anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.evaluation.judgments import Judgments, Query
from engine.evaluation.label_sets import halves
from engine.evaluation.metrics import evaluate
from engine.serving.bundle import ServingBundle
from engine.serving.searcher import Searcher

PROBE_METRIC = "probe_ndcg10_dense"
PROBE_QUERIES = 12  # a handful: a second or two on a CPU, enough to see a shifted embedding table
PROBE_LIMIT = 100


@dataclass(frozen=True)
class Probe:
    queries: list[Query]
    judgments: Judgments


def load_probe(
    path: str | Path | None,
    queries_path: str | Path | None = None,
    store_dir: str | Path | None = None,
    size: int = PROBE_QUERIES,
) -> Probe | None:
    """The first `size` train-half queries by id (a fixed set), or None without usable judgments.

    The judgments and their split are the build's own (engine.evaluation.label_sets): ESCI JSON,
    or TREC qrels with a queries file, split once and stored under `store_dir`."""
    labels = halves(path, queries_path, store_dir)
    if labels is None:
        return None
    train = labels.fit.queries + labels.validation.queries
    queries = sorted(train, key=lambda q: q.qid)[:size]
    return Probe(queries, labels.fit.judgments) if queries else None


def probe_ndcg(searcher: Searcher, probe: Probe, bundle: ServingBundle | None = None) -> float:
    """Mean dense NDCG@10 of the probe queries, served from `bundle` (the searcher's own by default)."""
    run = {}
    for query in probe.queries:
        hits, _, _ = searcher.retrieve(query.text, limit=PROBE_LIMIT, mode="dense", bundle=bundle)
        run[query.qid] = [searcher.cards[pid].external_id for pid, _ in hits]
    return evaluate(run, probe.judgments, [q.qid for q in probe.queries]).ndcg
