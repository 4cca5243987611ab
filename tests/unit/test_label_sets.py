"""The judged queries by role (engine.evaluation.label_sets): fit, validation and test never overlap."""

from __future__ import annotations

import pytest

from engine.evaluation.judgments import DEMO_JUDGMENTS, EvaluationDataError
from engine.evaluation.label_sets import halves, read_judged, validation_slice
from engine.evaluation.split import load_split


def test_demo_judgments_use_the_demo_split_and_a_seeded_validation_slice(tmp_path):
    labels = halves(DEMO_JUDGMENTS, store_dir=tmp_path)
    fit, validation, test = ({q.text for q in s.queries} for s in (labels.fit, labels.validation, labels.test))
    assert (len(fit), len(validation), len(test)) == (53, 22, 75)
    assert fit | validation == load_split().texts("train") and test == load_split().texts("test")
    assert not fit & validation and not (fit | validation) & test
    assert not (tmp_path / "splits").exists()  # the demo split file is the stored split
    assert [q.text for q in validation_slice(labels.train.queries)] == [q.text for q in labels.validation.queries]


def test_trec_qrels_need_their_queries(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("a 0 P1 1\nb 0 P2 1\n")
    assert halves(qrels, None, tmp_path) is None  # not usable: the build says so and uses RRF
    with pytest.raises(EvaluationDataError, match="queries file"):
        read_judged(qrels)
    queries = tmp_path / "q.tsv"
    queries.write_text("a\tred shoes\nb\tblue hat\nc\tunjudged\n")
    judged, _ = read_judged(qrels, queries)
    assert [q.qid for q in judged] == ["a", "b"]  # only judged queries take part
    labels = halves(qrels, queries, tmp_path)
    assert len(labels.train.queries) == len(labels.test.queries) == 1 and labels.validation.queries
