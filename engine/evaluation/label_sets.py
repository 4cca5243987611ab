"""A shop's judged queries and their halves: fit and validation (both of the train half) and test.

Judgments are ESCI JSON (which carries its queries) or TREC qrels with a `qid<TAB>text`
queries file. The train/test split is the demo split file when every query is one of the
demo's; otherwise make_split's seeded halves for this query set, written once beside the
instance (so every build, gate, fine-tune and `flask eval` uses the same halves). Validation
is a seeded slice of the train half that fine-tuning never trains on: choices (the ranker,
the gate) are judged there; the test half only reports.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from engine.evaluation.judgments import (
    EvaluationDataError,
    Judgments,
    Query,
    is_esci_json,
    read_esci_judgments,
    read_esci_queries,
    read_query_tsv,
    read_trec_qrels,
)
from engine.evaluation.split import DEMO_SPLIT, Split, load_split, make_split, write_split

VALIDATION_SEED = "kairos-validation-1"
VALIDATION_FRACTION = 0.3


@dataclass(frozen=True)
class LabelSet:
    """Queries with graded judgments keyed by external product id."""

    queries: list[Query]
    judgments: Judgments


@dataclass(frozen=True)
class Halves:
    """The labelled queries by role: fit + validation make the train half."""

    fit: LabelSet
    validation: LabelSet
    test: LabelSet

    @property
    def train(self) -> LabelSet:
        return LabelSet(self.fit.queries + self.validation.queries, self.fit.judgments)


def read_judged(judgments_path: str | Path, queries_path: str | Path | None = None) -> tuple[list[Query], Judgments]:
    """Queries and judgments from ESCI JSON, or TREC qrels plus a queries file; only judged queries."""
    if is_esci_json(judgments_path):
        judgments = read_esci_judgments(judgments_path)
        queries = read_query_tsv(queries_path) if queries_path else read_esci_queries(judgments_path)
    else:
        if not queries_path:
            raise EvaluationDataError(f"{judgments_path}: TREC qrels need a queries file (qid<TAB>text)")
        judgments, queries = read_trec_qrels(judgments_path), read_query_tsv(queries_path)
    return [q for q in queries if q.qid in judgments.grades], judgments


def split_for(texts: list[str], store_dir: str | Path | None) -> Split:
    """The train/test halves of these query texts: the demo split, or a seeded one stored under store_dir."""
    demo = load_split(DEMO_SPLIT) if DEMO_SPLIT.is_file() else None
    if demo is not None and set(texts) <= demo.texts("all"):
        return demo
    digest = hashlib.sha256("\n".join(sorted(set(texts))).encode()).hexdigest()[:16]
    path = Path(store_dir or ".") / "splits" / f"split-{digest}.json"
    if path.is_file():
        return load_split(path)
    split = make_split(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_split(split, path)
    return split


def validation_slice(train: list[Query], fraction: float = VALIDATION_FRACTION) -> list[Query]:
    """A seeded share of the train half (at least one query when there is any)."""
    key = lambda q: hashlib.sha256(f"{VALIDATION_SEED}\n{q.text}".encode()).hexdigest()  # noqa: E731
    return sorted(train, key=key)[: max(1, round(len(train) * fraction))] if train else []


def halves(
    judgments_path: str | Path | None,
    queries_path: str | Path | None = None,
    store_dir: str | Path | None = None,
    fraction: float = VALIDATION_FRACTION,
) -> Halves | None:
    """The labelled queries by role, or None when no usable judgments are configured."""
    if not judgments_path or not Path(judgments_path).is_file():
        return None
    if not is_esci_json(judgments_path) and not (queries_path and Path(queries_path).is_file()):
        return None
    queries, judgments = read_judged(judgments_path, queries_path)
    split = split_for([q.text for q in queries], store_dir)
    train_texts, test_texts = split.texts("train"), split.texts("test")
    train = [q for q in queries if q.text in train_texts]
    validation = validation_slice(train, fraction)
    held = {q.qid for q in validation}
    return Halves(
        fit=LabelSet([q for q in train if q.qid not in held], judgments),
        validation=LabelSet(validation, judgments),
        test=LabelSet([q for q in queries if q.text in test_texts], judgments),
    )
