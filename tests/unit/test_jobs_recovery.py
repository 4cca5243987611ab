"""Recovering lost background work (webapp.services.jobs, webapp.cli_jobs, worker.celery_app):
queued jobs whose message was lost are sent again; a job whose worker died past its retries is
marked failed instead of "running" forever."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import pytest
from billiard.exceptions import WorkerLostError
from kombu.exceptions import OperationalError as BrokerUnavailable

from webapp.extensions import db
from webapp.models import Job, utcnow
from webapp.services.jobs import fail_lost_job, requeue_stale_jobs


@pytest.fixture
def sent(app):
    """send_task recorded: (task name, args) per call, each answered with a fresh task id."""
    calls = []

    def send_task(name, args=None, **_):
        calls.append((name, args))
        return SimpleNamespace(id=f"task-{len(calls)}")

    with mock.patch.object(app.extensions["celery"], "send_task", side_effect=send_task):
        yield calls


def _job(kind: str, status: str, minutes_ago: float, task_id: str = "old") -> Job:
    job = Job(kind=kind, status=status, celery_task_id=task_id, created_at=utcnow() - timedelta(minutes=minutes_ago))
    db.session.add(job)
    db.session.commit()
    return job


def test_only_queued_jobs_older_than_the_cutoff_are_sent_again(app, sent):
    lost = _job("build_version", "queued", 30)
    fresh = _job("catalog_import", "queued", 1)
    running = _job("fine_tune", "running", 30)
    unknown = _job("mystery", "queued", 30)
    again = requeue_stale_jobs(600)
    assert [j.id for j in again] == [lost.id]
    assert sent == [("inference.build_version", [lost.id])]
    assert lost.celery_task_id == "task-1" and lost.status == "queued"
    assert fresh.celery_task_id == running.celery_task_id == unknown.celery_task_id == "old"


def test_requeue_cli_reports_and_a_dead_broker_is_a_clear_error(app, runner, sent):
    job = _job("catalog_import", "queued", 30)
    result = runner.invoke(args=["jobs", "requeue", "--older-than", "60"])
    assert result.exit_code == 0 and f"job {job.id} (catalog_import) sent again" in result.output
    assert sent == [("catalog.import_file", [job.id])]
    with mock.patch.object(app.extensions["celery"], "send_task", side_effect=BrokerUnavailable("refused")):
        result = runner.invoke(args=["jobs", "requeue", "--older-than", "0"])
    assert result.exit_code == 1 and "the job queue is still unreachable (refused)" in result.output


def test_fail_lost_job_fails_only_unfinished_jobs(app):
    running, done = _job("build_version", "running", 5), _job("build_version", "succeeded", 5)
    fail_lost_job(running.id, "worker died")
    fail_lost_job(done.id, "worker died")
    fail_lost_job(10_000, "no such job")
    assert (running.status, running.error) == ("failed", "worker died") and running.finished_at is not None
    assert done.status == "succeeded"


def test_the_worker_fails_the_job_when_a_lost_worker_has_no_retries_left(app, monkeypatch):
    import worker.celery_app as celery_app

    monkeypatch.setattr(celery_app, "flask_app", app)
    job, other = _job("build_version", "running", 5), _job("build_version", "running", 5)
    build = SimpleNamespace(name="inference.build_version")
    celery_app._fail_the_job_of_a_lost_worker(sender=build, exception=ValueError("no"), args=[other.id])
    celery_app._fail_the_job_of_a_lost_worker(
        sender=SimpleNamespace(name="experiments.snapshot"), exception=WorkerLostError("x"), args=[other.id]
    )
    celery_app._fail_the_job_of_a_lost_worker(sender=build, exception=WorkerLostError("signal 9"), args=[job.id])
    db.session.expire_all()
    assert job.status == "failed" and "signal 9" in job.error
    assert other.status == "running"  # another error, or a task that takes no job id: not ours to fail


def test_lost_pool_children_retry_their_task(app):
    celery = app.extensions["celery"]
    assert celery.conf.task_retry_on_worker_lost is True
    assert celery.conf.task_annotations["*"]["default_retry_delay"] == 30.0
