"""`flask simulate` against a real HTTP server on loopback, and `flask model train`."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from engine.evaluation.simulator import SimulationSummary, Simulator
from engine.evaluation.split import load_split
from webapp.cli_simulate import is_loopback
from webapp.extensions import db
from webapp.models import Event, Impression, Job, ModelVersion, SearchQuery, Visitor

PRODUCTS = {
    "M1": "red ceramic coffee mug",
    "M2": "blue glass coffee mug",
    "M3": "travel mug with lid",
    "H1": "wireless headphones",
    "H2": "headphone stand",
}


@pytest.fixture
def server(app, make_product):
    """The test app served over real HTTP on a free loopback port, in a thread."""
    for external_id, title in PRODUCTS.items():
        make_product(external_id=external_id, title=title, rating=4.5 if external_id.endswith("1") else 3.0)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def trec(tmp_path):
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tcoffee mug\nq2\theadphones\nq3\tnobody judged this\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 M1 3\nq1 0 M2 2\nq1 0 M3 1\nq2 0 H1 3\nq2 0 H2 0\n")
    return str(queries), str(qrels)


def simulate(runner, *args: str):
    return runner.invoke(args=["simulate", *args])


def test_simulated_shoppers_leave_real_feedback(app, runner, server, trec):
    queries, qrels = trec
    result = simulate(
        runner,
        "--base-url",
        server,
        "--sessions",
        "30",
        "--queries",
        queries,
        "--qrels",
        qrels,
        "--seed",
        "4",
        "--workers",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "simulating 30 sessions" in result.output and "skipped 1 queries without judgments" in result.output
    assert "errors 0" in result.output and "CTR by position" in result.output
    db.session.expire_all()
    searches = db.session.scalar(select(func.count(SearchQuery.id)))
    assert 30 <= searches <= 90 and db.session.scalar(select(func.count(Visitor.id))) == 30  # one cookie each
    assert db.session.scalar(select(func.count(Impression.id))) > 0
    clicks = db.session.scalars(select(Event).where(Event.type == "click")).all()
    assert clicks and all(e.search_id is not None and e.position is not None for e in clicks)
    texts = set(db.session.scalars(select(SearchQuery.text)))
    assert texts <= {"coffee mug", "headphones"}


def test_only_loopback_unless_allowed(runner, trec):
    queries, qrels = trec
    refused = simulate(runner, "--base-url", "http://shop.example.com", "--queries", queries, "--qrels", qrels)
    assert refused.exit_code != 0 and "not a loopback address" in refused.output
    assert simulate(runner, "--base-url", "ftp://127.0.0.1").exit_code != 0
    assert is_loopback("http://localhost:5000") and is_loopback("http://[::1]:80") and is_loopback("http://127.0.0.2")
    assert not is_loopback("http://10.0.0.1") and not is_loopback("http://shop.example.com")


def test_demo_train_split_is_the_default(runner, server, monkeypatch):
    seen = {}

    def run(self, new_visitor, sessions, **kwargs):
        seen.update(sessions=sessions, queries={q.text for q in self.queries})
        return SimulationSummary(sessions=sessions)

    monkeypatch.setattr(Simulator, "run", run)
    result = simulate(runner, "--base-url", server, "--demo", "--sessions", "5")
    assert result.exit_code == 0, result.output
    assert seen == {"sessions": 5, "queries": load_split().texts("train")}


def test_a_refusing_shop_stops_the_run(runner, trec):
    queries, qrels = trec
    # Nothing listens on port 9 of loopback (discard): every request fails fast.
    result = simulate(
        runner,
        "--base-url",
        "http://127.0.0.1:9",
        "--sessions",
        "40",
        "--queries",
        queries,
        "--qrels",
        qrels,
        "--max-errors",
        "5",
        "--timeout",
        "2",
    )
    assert result.exit_code != 0 and "stopped after" in result.output


def test_model_train_queues_the_same_job_as_the_admin_button(app, runner, monkeypatch):
    sent = []
    monkeypatch.setattr(
        app.extensions["celery"],
        "send_task",
        lambda name, args=None, **_: sent.append((name, args)) or SimpleNamespace(id="t1"),
    )
    assert "no active version" in runner.invoke(args=["model", "train"]).output
    version = ModelVersion(name="v", status="active", artifact_path="/nowhere")
    db.session.add(version)
    db.session.commit()
    result = runner.invoke(args=["model", "train"])
    assert result.exit_code == 0, result.output
    job = db.session.scalar(select(Job))
    assert (job.kind, job.params) == ("fine_tune", {"parent_version_id": version.id})
    assert sent == [("training.fine_tune", [job.id])] and f"queued as job {job.id}" in result.output
    result = runner.invoke(
        args=["model", "train", "--parent", str(version.id), "--correction", "none", "--method", "full"]
    )
    assert result.exit_code == 0, result.output
    latest = db.session.scalars(select(Job).order_by(Job.id.desc())).first()
    assert latest.params == {"parent_version_id": version.id, "correction": "none", "train": {"method": "full"}}
    assert runner.invoke(args=["model", "train", "--parent", "999"]).exit_code != 0
    latest.status = "failed"
    db.session.commit()
    result = runner.invoke(args=["model", "train", "--resume", str(latest.id)])
    assert result.exit_code == 0 and sent[-1] == ("training.fine_tune", [latest.id]), result.output
    assert runner.invoke(args=["model", "train", "--resume", str(job.id + 100)]).exit_code != 0
