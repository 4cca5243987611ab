"""Reading TREC qrels, TSV queries and ESCI judgments JSON."""

from __future__ import annotations

import json

import pytest

from engine.evaluation.judgments import (
    DEMO_JUDGMENTS,
    ESCI_EXACT,
    EvaluationDataError,
    Judgments,
    esci_qid,
    is_esci_json,
    read_esci_judgments,
    read_esci_queries,
    read_query_tsv,
    read_trec_qrels,
)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def esci_file(tmp_path, entries: list[dict], name: str = "j.json"):
    return write(tmp_path, name, json.dumps({"name": "t", "judgmentRatings": entries}))


def test_trec_qrels_reads_grades_and_skips_comments(tmp_path):
    path = write(tmp_path, "q.txt", "# header\nq1 0 d1 2\n\nq1 0 d2 0\nq2\t0\td1\t-1\nq1 0 d1 2\n")
    judgments = read_trec_qrels(path)
    assert judgments.grades == {"q1": {"d1": 2, "d2": 0}, "q2": {"d1": -1}}
    assert judgments.rel_level == 1 and judgments.gain_map is None
    # The grade is the gain, as in trec_eval; negative grades gain nothing.
    assert judgments.gains("q1") == {"d1": 2.0, "d2": 0.0}
    assert judgments.gains("q2") == {"d1": 0.0}
    assert judgments.relevant("q1") == {"d1"}
    assert judgments.gains("missing") == {} and judgments.relevant("missing") == set()


@pytest.mark.parametrize(
    "line, message",
    [
        ("q1 0 d1", "line 2: expected 'qid iteration docid grade', got 3 fields"),
        ("q1 0 d1 2 extra", "line 2: expected 'qid iteration docid grade', got 5 fields"),
        ("q1 0 d1 high", "line 2: grade must be a whole number, got 'high'"),
        ("q1 0 d1 0.5", "line 2: grade must be a whole number, got '0.5'"),
        ("q1 0 d9 1\nq1 0 d9 2", "line 3: q1 d9 judged twice with different grades"),
    ],
)
def test_trec_qrels_errors_name_the_line(tmp_path, line, message):
    path = write(tmp_path, "bad.txt", f"q1 0 d1 1\n{line}\n")
    with pytest.raises(EvaluationDataError) as info:
        read_trec_qrels(path)
    assert str(info.value).startswith(f"{path} {message}")


def test_trec_qrels_missing_or_empty_file(tmp_path):
    with pytest.raises(EvaluationDataError, match="no such file"):
        read_trec_qrels(tmp_path / "absent.txt")
    with pytest.raises(EvaluationDataError, match="no judgments found"):
        read_trec_qrels(write(tmp_path, "empty.txt", "# nothing\n\n"))


def test_query_tsv(tmp_path):
    path = write(tmp_path, "q.tsv", "# qid\ttext\nq1\tred kettle \n\nq2\tmug\twith tab\n")
    queries = read_query_tsv(path)
    assert [(q.qid, q.text) for q in queries] == [("q1", "red kettle"), ("q2", "mug\twith tab")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("q1\tok\nq2 no tab\n", "line 2: expected 'qid<TAB>query text'"),
        ("q1\tok\nq2\t  \n", "line 2: expected 'qid<TAB>query text'"),
        ("q 1\tspaced id\n", "line 1: expected 'qid<TAB>query text'"),
        ("q1\tok\n\nq1\tagain\n", "line 3: query id 'q1' appears twice"),
    ],
)
def test_query_tsv_errors_name_the_line(tmp_path, text, message):
    with pytest.raises(EvaluationDataError, match=message):
        read_query_tsv(write(tmp_path, "q.tsv", text))


def test_esci_json_maps_ratings_to_gains(tmp_path):
    path = esci_file(
        tmp_path,
        [
            {
                "query": "red kettle",
                "ratings": [
                    {"docId": "E", "rating": "100.000"},
                    {"docId": "S", "rating": "10.000"},
                    {"docId": "C", "rating": "1.000"},
                    {"docId": "I", "rating": "0.000"},
                ],
            },
            {"query": "mug", "ratings": [{"docId": "E", "rating": 100}]},
        ],
    )
    judgments = read_esci_judgments(path)
    qid = esci_qid("red kettle")
    assert judgments.grades[qid] == {"E": 100, "S": 10, "C": 1, "I": 0}
    assert judgments.gains(qid) == {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
    assert judgments.relevant(qid) == {"E"}  # Exact only
    assert judgments.rel_level == ESCI_EXACT
    assert [(q.qid, q.text) for q in read_esci_queries(path)] == [(qid, "red kettle"), (esci_qid("mug"), "mug")]


def test_esci_qid_is_stable_and_independent_of_file_order(tmp_path):
    first = esci_file(tmp_path, [{"query": "a", "ratings": []}, {"query": "b", "ratings": []}], "1.json")
    second = esci_file(tmp_path, [{"query": "b", "ratings": []}, {"query": "a", "ratings": []}], "2.json")
    ids = {q.text: q.qid for q in read_esci_queries(first)}
    assert ids == {q.text: q.qid for q in read_esci_queries(second)}
    assert ids["a"] != ids["b"]
    # Pinned: run files and per-query reports written today must still match tomorrow.
    assert esci_qid("t towels kitchen") == "esci-1676b4c860"


@pytest.mark.parametrize(
    "entries, message",
    [
        (
            [{"query": "q", "ratings": [{"docId": "d", "rating": "50.000"}]}],
            r"judgmentRatings\[0\] \('q'\) d: rating must be one of",
        ),
        ([{"query": "q", "ratings": [{"docId": "d", "rating": "high"}]}], "rating must be a number, got 'high'"),
        ([{"query": "q", "ratings": [{"rating": "1.000"}]}], "a rating has no docId"),
        ([{"query": "", "ratings": []}], r"judgmentRatings\[0\]: expected"),
        (
            [{"query": "q", "ratings": []}, {"query": "q", "ratings": []}],
            r"judgmentRatings\[1\]: query 'q' appears twice",
        ),
    ],
)
def test_esci_json_errors_name_the_entry(tmp_path, entries, message):
    with pytest.raises(EvaluationDataError, match=message):
        read_esci_judgments(esci_file(tmp_path, entries))


def test_esci_json_not_json_names_the_line(tmp_path):
    path = write(tmp_path, "bad.json", '{\n  "judgmentRatings": [\n  oops\n]}')
    with pytest.raises(EvaluationDataError, match=r"bad.json line 3: not valid JSON"):
        read_esci_judgments(path)
    with pytest.raises(EvaluationDataError, match="non-empty 'judgmentRatings'"):
        read_esci_judgments(write(tmp_path, "empty.json", '{"judgmentRatings": []}'))


def test_demo_judgments_match_the_data_readme():
    judgments = read_esci_judgments(DEMO_JUDGMENTS)
    queries = read_esci_queries(DEMO_JUDGMENTS)
    assert len(queries) == len(judgments.grades) == 150
    grades = [g for docs in judgments.grades.values() for g in docs.values()]
    assert len(grades) == 6678
    assert {g: grades.count(g) for g in (100, 10, 1, 0)} == {100: 3389, 10: 1898, 1: 305, 0: 1086}


def test_rel_level_override_keeps_gains():
    judgments = Judgments(grades={"q": {"a": 1, "b": 2}}, rel_level=2)
    assert judgments.relevant("q") == {"b"}
    assert judgments.gains("q") == {"a": 1.0, "b": 2.0}


def test_is_esci_json():
    assert is_esci_json("x/judgments.JSON") and not is_esci_json("qrels.txt")
