"""`flask eval`: a tiny catalog, tiny judgments, metrics checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.evaluation.judgments import esci_qid
from webapp.cli_eval import eval_command
from webapp.extensions import db
from webapp.models import SearchQuery

QUERIES = "q1\tsteel kettle\nq2\tmug\nq3\tteapot\n"
# q1 retrieves P00001 (both words) then P00002 (one word); P00009 is relevant but absent.
# q2 retrieves only P00003, judged irrelevant; P00004 is relevant. q3 has no judgments.
QRELS = "q1 0 P00001 1\nq1 0 P00002 2\nq1 0 P00009 1\nq2 0 P00003 0\nq2 0 P00004 1\n"
# q1 (gain = grade): DCG = 1/log2(2) + 2/log2(3) = 2.2618595; IDCG = 2 + 1/log2(3) + 1/log2(4) = 3.1309298
Q1_NDCG = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3) + 0.5)


@pytest.fixture
def catalog(make_product):
    make_product(title="Steel kettle 1.7 litre", brand="Brew")
    make_product(title="Electric kettle", brand="Brew")
    make_product(title="Stoneware mug", brand="Cup")
    make_product(title="Garden hose", brand="Green")


@pytest.fixture
def files(tmp_path):
    queries, qrels = tmp_path / "queries.tsv", tmp_path / "qrels.txt"
    queries.write_text(QUERIES)
    qrels.write_text(QRELS)
    return queries, qrels


def metric_lines(output: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in output.splitlines() if line.split()}


def test_eval_prints_metrics_and_writes_a_trec_run(catalog, files, runner, tmp_path):
    queries, qrels = files
    run_path = tmp_path / "run.txt"
    result = runner.invoke(
        eval_command,
        ["--queries", str(queries), "--qrels", str(qrels), "--split", "all", "--run-out", str(run_path), "--per-query"],
    )
    assert result.exit_code == 0, result.output
    assert "skipped 1 queries without judgments" in result.output
    lines = run_path.read_text().splitlines()
    assert lines == [
        "q1 Q0 P00001 1 2 kairos-lexical",
        "q1 Q0 P00002 2 1 kairos-lexical",
        "q2 Q0 P00003 1 1 kairos-lexical",
    ]
    found = metric_lines(result.output)
    assert found["NDCG@10"] == f"{Q1_NDCG / 2:.4f}" == "0.3612"
    assert found["MRR@10"] == "0.5000"  # q1: rank 1; q2: nothing relevant retrieved
    assert found["Recall@100"] == "0.3333"  # q1: 2 of 3; q2: 0 of 1
    assert found["queries"] == "2"
    assert found["q1"] == f"{Q1_NDCG:.4f}" and found["q2"] == "0.0000"
    assert "q1 " in result.output and "steel kettle" in result.output


def test_eval_logs_no_searches(catalog, files, runner):
    queries, qrels = files
    result = runner.invoke(eval_command, ["--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(SearchQuery)) == 0


def test_rel_level_changes_binary_metrics_only(catalog, files, runner):
    queries, qrels = files
    result = runner.invoke(
        eval_command, ["--queries", str(queries), "--qrels", str(qrels), "--split", "all", "--rel-level", "2"]
    )
    found = metric_lines(result.output)
    assert found["NDCG@10"] == "0.3612"
    assert found["MRR@10"] == "0.2500"  # q1: the grade-2 product at rank 2
    assert found["Recall@100"] == "0.5000"  # q1: 1 of 1; q2: nothing is relevant, scores 0


def test_esci_json_carries_its_queries(catalog, runner, tmp_path):
    path, run_path = tmp_path / "j.json", tmp_path / "run.txt"
    path.write_text(
        json.dumps(
            {
                "judgmentRatings": [
                    {
                        "query": "kettle",
                        "ratings": [{"docId": "P00001", "rating": "100.000"}, {"docId": "P00002", "rating": "10.000"}],
                    },
                ]
            }
        )
    )
    result = runner.invoke(
        eval_command, ["--qrels", str(path), "--split", "all", "--per-query", "--run-out", str(run_path)]
    )
    assert result.exit_code == 0, result.output
    qid = esci_qid("kettle")
    # The shorter title wins on BM25: the Substitute first, then the Exact.
    assert [line.split()[:3] for line in run_path.read_text().splitlines()] == [
        [qid, "Q0", "P00002"],
        [qid, "Q0", "P00001"],
    ]
    # DCG = 0.1/log2(2) + 1.0/log2(3) = 0.7309298; IDCG = 1.0 + 0.1/log2(3) = 1.0630930
    expected = (0.1 + 1 / math.log2(3)) / (1 + 0.1 / math.log2(3))
    found = metric_lines(result.output)
    assert found["NDCG@10"] == found[qid] == f"{expected:.4f}" == "0.6876"
    assert found["MRR@10"] == "0.5000" and found["Recall@100"] == "1.0000"  # Exact only is relevant
    assert "ESCI gains" in result.output and "grade >= 100" in result.output


def test_demo_test_split_runs_75_queries(catalog, runner):
    result = runner.invoke(eval_command, ["--demo", "--split", "test"])
    assert result.exit_code == 0, result.output
    found = metric_lines(result.output)
    assert found["queries"] == "75"
    assert found["NDCG@10"] == "0.0000"  # none of the demo products is in this catalog


def test_demo_defaults_to_the_train_half(catalog, runner):
    result = runner.invoke(eval_command, ["--demo"])
    assert result.exit_code == 0, result.output
    assert "split train" in result.output and metric_lines(result.output)["queries"] == "75"


def test_a_shops_own_queries_get_a_stored_split_and_test_only_when_asked(app, catalog, files, runner):
    queries, qrels = files
    args = ["--queries", str(queries), "--qrels", str(qrels), "--per-query"]
    train = runner.invoke(eval_command, args)
    test = runner.invoke(eval_command, [*args, "--split", "test"])
    assert train.exit_code == test.exit_code == 0, train.output + test.output
    assert "split train" in train.output and "split test" in test.output
    halves = [{q for q in ("q1", "q2") if q in metric_lines(r.output)} for r in (train, test)]
    assert halves[0] and halves[1] and halves[0] | halves[1] == {"q1", "q2"} and not halves[0] & halves[1]
    stored = list((Path(app.config["INSTANCE_DIR"]) / "splits").glob("split-*.json"))
    assert len(stored) == 1 and set(json.loads(stored[0].read_text())["train"]) <= {"steel kettle", "mug"}


def test_malformed_qrels_names_the_line(catalog, files, runner):
    queries, qrels = files
    qrels.write_text("q1 0 P00001 1\nq1 0 P00002 two\n")
    result = runner.invoke(eval_command, ["--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 1
    assert f"{qrels} line 2: grade must be a whole number, got 'two'" in result.output


def test_malformed_queries_name_the_line(catalog, files, runner):
    queries, qrels = files
    queries.write_text("q1\tsteel kettle\nq2 mug\n")
    result = runner.invoke(eval_command, ["--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 1
    assert f"{queries} line 2: expected 'qid<TAB>query text'" in result.output


def test_missing_files_and_bad_usage(catalog, files, runner, tmp_path):
    queries, qrels = files
    missing = tmp_path / "absent.txt"
    result = runner.invoke(eval_command, ["--queries", str(queries), "--qrels", str(missing)])
    assert result.exit_code == 2 and "absent.txt" in result.output and "does not exist" in result.output
    result = runner.invoke(eval_command, ["--qrels", str(qrels)])
    assert result.exit_code == 2 and "--queries is required with TREC qrels" in result.output
    result = runner.invoke(eval_command, ["--queries", str(queries)])
    assert result.exit_code == 2 and "exactly one of --qrels PATH or --demo" in result.output
    result = runner.invoke(eval_command, ["--demo", "--mode", "telepathy"])
    assert result.exit_code == 2 and "lexical" in result.output


def test_unmatched_query_ids_are_an_error(catalog, files, runner):
    queries, qrels = files
    queries.write_text("x1\tsteel kettle\n")
    result = runner.invoke(eval_command, ["--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 1 and "no query has judgments" in result.output


def test_registered_on_the_flask_cli(app):
    assert "eval" in app.cli.commands
