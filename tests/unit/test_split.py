"""The demo train/test split: fixed, reproducible, disjoint, and the shipped file matches the code."""

from __future__ import annotations

import json

import pytest

from engine.evaluation.judgments import DEMO_JUDGMENTS, EvaluationDataError, read_esci_queries
from engine.evaluation.split import DEMO_SPLIT, demo_split, load_split, make_split, write_split

TEXTS = [f"query {i}" for i in range(11)]


def test_split_is_reproducible_and_independent_of_input_order():
    first = make_split(TEXTS)
    assert make_split(TEXTS) == first
    again = make_split(list(reversed(TEXTS)))
    assert set(again.train) == set(first.train) and set(again.test) == set(first.test)
    # Each side keeps the input order, so the file reads like the judgments file.
    assert list(first.train) == [t for t in TEXTS if t in set(first.train)]


def test_split_halves_are_disjoint_and_cover_everything():
    split = make_split(TEXTS + ["query 0"])  # a duplicate text is one query
    assert not set(split.train) & set(split.test)
    assert set(split.train) | set(split.test) == set(TEXTS)
    assert (len(split.train), len(split.test)) == (5, 6)


def test_seed_changes_the_split():
    assert set(make_split(TEXTS, seed="a").train) != set(make_split(TEXTS, seed="b").train)


def test_demo_split_is_75_75_over_the_150_queries():
    split = demo_split()
    texts = {q.text for q in read_esci_queries(DEMO_JUDGMENTS)}
    assert len(split.train) == len(split.test) == 75
    assert not set(split.train) & set(split.test)
    assert set(split.train) | set(split.test) == texts
    assert split.texts("all") == texts and split.texts("test") == set(split.test)
    with pytest.raises(ValueError, match="split must be one of"):
        split.texts("dev")


def test_shipped_split_file_matches_the_function():
    assert load_split(DEMO_SPLIT) == demo_split()
    body = json.loads(DEMO_SPLIT.read_text(encoding="utf-8"))
    assert "python -m engine.evaluation.split" in body["note"]


def test_write_then_load_round_trips(tmp_path):
    split = make_split(TEXTS)
    write_split(split, tmp_path / "s.json")
    assert load_split(tmp_path / "s.json") == split


def test_load_split_errors(tmp_path):
    with pytest.raises(EvaluationDataError, match="no such file"):
        load_split(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": ["a"],\n "test": [1]}')
    with pytest.raises(EvaluationDataError, match="expected 'train' and 'test' lists"):
        load_split(bad)
    bad.write_text('{"train":\n ["a",}')
    with pytest.raises(EvaluationDataError, match="line 2: not valid JSON"):
        load_split(bad)
