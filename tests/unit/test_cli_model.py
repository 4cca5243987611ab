"""`flask model bootstrap|list|activate|rollback|job`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from engine.serving.vectors import EMBEDDINGS_FILE
from tests.unit.serving_fixtures import build_version_dir, card
from webapp.extensions import db
from webapp.models import Job, ModelVersion
from webapp.services.model_versions import activate_version, create_version


@pytest.fixture
def sent(app, monkeypatch):
    """Tasks sent to the broker, by name and args (the Celery app's send_task, recorded)."""
    calls: list[tuple[str, list]] = []

    def send_task(name: str, args=None, **_options):
        calls.append((name, list(args or [])))
        return SimpleNamespace(id=f"task-{len(calls)}")

    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    return calls


def ready_version(name: str, status: str = "ready", metrics: dict | None = None) -> ModelVersion:
    version = create_version(name)
    build_version_dir(version.artifact_path, [card(1, "red running shoes"), card(2, "blue rain jacket")])
    version.status, version.metrics = status, metrics or {}
    db.session.commit()
    return version


def versions() -> list[ModelVersion]:
    db.session.expire_all()
    return list(db.session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def test_bootstrap_creates_a_building_version_and_enqueues_its_build(app, runner, sent):
    result = runner.invoke(args=["model", "bootstrap", "--mode", "rrf"])
    assert result.exit_code == 0, result.output
    [version] = versions()
    job = db.session.scalar(select(Job))
    assert (version.status, version.retrieval_mode) == ("building", "rrf")
    assert Path(version.artifact_path).name == f"v{version.id}"
    assert (job.kind, job.status, job.params, job.celery_task_id) == (
        "build_version",
        "queued",
        {"version_id": version.id},
        "task-1",
    )
    assert sent == [("inference.build_version", [job.id])]
    assert f"version {version.id} building as job {job.id}" in result.output


def test_second_bootstrap_does_nothing_without_force(app, runner, sent):
    runner.invoke(args=["model", "bootstrap"])
    again = runner.invoke(args=["model", "bootstrap"])
    assert again.exit_code == 0 and "already exists (building); use --force" in again.output
    assert len(versions()) == 1 and len(sent) == 1
    forced = runner.invoke(args=["model", "bootstrap", "--force"])
    assert forced.exit_code == 0 and len(versions()) == 2 and len(sent) == 2
    assert sent[1] == ("inference.build_version", [db.session.scalar(select(db.func.max(Job.id)))])


def test_bootstrap_after_failed_versions_builds_again(app, runner, sent):
    failed = create_version("broken build")
    failed.status = "failed"
    db.session.commit()
    assert runner.invoke(args=["model", "bootstrap"]).exit_code == 0
    assert [v.status for v in versions()] == ["failed", "building"] and len(sent) == 1


def test_list_shows_validation_figures_never_test(app, runner, tiny_model):
    served = ready_version(
        "zero-shot", metrics={"validation_ndcg10_rrf": 0.41234, "validation_queries": 22, "test_ndcg10_rrf": 0.9}
    )
    activate_version(served.id)
    gate = {"passed": True, "difference": 0.012, "low": -0.004, "high": 0.031, "queries": 22, "parent_version_id": 1}
    ready_version(
        "candidate",
        metrics={
            "validation_ndcg10_hybrid": 0.5,
            "validation_ndcg10_rrf": 0.4,
            "served_pipeline": "ranker",
            "validation_queries": 22,
            "gate": gate,
            "test_ndcg10_hybrid": 0.7,
        },
    )
    create_version("in progress")
    result = runner.invoke(args=["model", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3 and "test" not in result.output.lower() and "0.9" not in result.output
    assert lines[0].split()[:3] == ["v1", "active", "hybrid"]
    assert "validation NDCG@10 0.4123 (rrf, 22 queries)" in lines[0]
    assert lines[1].split()[:2] == ["v2", "ready"] and "validation NDCG@10 0.5000 (ranker, 22 queries)" in lines[1]
    assert "gate passed: +0.0120 [-0.0040, +0.0310] vs v1 over 22 queries" in lines[1]
    assert lines[2].split()[:2] == ["v3", "building"] and "NDCG" not in lines[2]


def test_activate_and_its_errors(app, runner, tiny_model):
    good = ready_version("good")
    result = runner.invoke(args=["model", "activate", str(good.id)])
    assert result.exit_code == 0 and f"version {good.id} is active" in result.output
    corrupt = ready_version("corrupt")
    (Path(corrupt.artifact_path) / EMBEDDINGS_FILE).write_bytes(b"\x93NUMPY garbage")
    result = runner.invoke(args=["model", "activate", str(corrupt.id)])
    assert result.exit_code == 1
    assert f"Error: version {corrupt.id} cannot serve: artifact {EMBEDDINGS_FILE} does not match" in result.output
    assert [v.status for v in versions()] == ["active", "ready"]
    missing = runner.invoke(args=["model", "activate", "99"])
    assert missing.exit_code == 1 and "no model version 99" in missing.output


def test_rollback(app, runner, tiny_model):
    nothing = runner.invoke(args=["model", "rollback"])
    assert nothing.exit_code == 1 and "no earlier version to roll back to" in nothing.output
    first, second = ready_version("one"), ready_version("two")
    activate_version(first.id)
    activate_version(second.id)
    result = runner.invoke(args=["model", "rollback"])
    assert result.exit_code == 0 and f"rolled back: version {first.id} is active" in result.output
    assert [v.status for v in versions()] == ["active", "retired"]


def test_job_follows_a_finished_job(app, runner):
    done = Job(kind="build_version", status="succeeded", progress=1.0, result={"version_id": 1})
    failed = Job(kind="build_version", status="failed", progress=0.2, error="ValueError: no products")
    db.session.add_all([done, failed])
    db.session.commit()
    result = runner.invoke(args=["model", "job", str(done.id)])
    assert result.exit_code == 0 and f"job {done.id} succeeded" in result.output
    result = runner.invoke(args=["model", "job", str(failed.id)])
    assert result.exit_code == 1 and "failed: ValueError: no products" in result.output
    result = runner.invoke(args=["model", "job", "404"])
    assert result.exit_code == 1 and "no job 404" in result.output


def test_job_times_out_on_a_job_still_queued(app, runner):
    queued = Job(kind="build_version", status="queued")
    db.session.add(queued)
    db.session.commit()
    result = runner.invoke(args=["model", "job", str(queued.id), "--timeout", "0.5"])
    assert result.exit_code == 1 and "is still queued" in result.output


def test_job_prints_progress_lines_when_its_output_is_not_a_terminal(app, runner):
    running = Job(kind="build_version", status="running", progress=0.37, message="embedding 2500 of 6764")
    db.session.add(running)
    db.session.commit()
    result = runner.invoke(args=["model", "job", str(running.id), "--timeout", "1.5"])  # CliRunner: no terminal
    assert f"job {running.id}: running 37.0% - embedding 2500 of 6764" in result.output, result.output
    assert result.exit_code == 1 and "is still running" in result.output


def test_job_says_a_refusal_and_what_would_let_it_run(app, runner):
    refused = Job(
        kind="fine_tune",
        status="refused",
        message="too little feedback: 2 positive (query, product) pairs",
        result={"refused": "too little feedback: 2 positive (query, product) pairs", "next_step": "Send shoppers."},
    )
    db.session.add(refused)
    db.session.commit()
    result = runner.invoke(args=["model", "job", str(refused.id)])
    assert result.exit_code == 1 and "failed" not in result.output
    assert f"job {refused.id} was refused (nothing broke): too little feedback: 2 positive" in result.output
    assert "Send shoppers." in result.output


def test_bootstrap_with_an_unreachable_broker_leaves_nothing_building(app, runner, monkeypatch):
    from kombu.exceptions import OperationalError

    def refuse(*_args, **_kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app.extensions["celery"], "send_task", refuse)
    result = runner.invoke(args=["model", "bootstrap"])
    assert result.exit_code != 0 and "could not enqueue" in result.output
    db.session.expire_all()
    assert [(v.status, "could not enqueue" in v.metrics["error"]) for v in versions()] == [("failed", True)]
    job = db.session.scalar(select(Job))
    assert job.status == "failed" and "Connection refused" in job.error


def test_broker_transport_options_only_for_redis(monkeypatch):
    from webapp.config import load_config

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    assert load_config()["CELERY"]["broker_transport_options"] == {}  # kombu's SQLAlchemy transport
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    assert load_config()["CELERY"]["broker_transport_options"]["visibility_timeout"] >= 3600
