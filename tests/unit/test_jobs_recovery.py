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
from sqlalchemy.exc import OperationalError

from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Job, ModelVersion, utcnow
from webapp.services.jobs import (
    JOB_KINDS,
    JOB_TASKS,
    fail_lost_job,
    fail_stale_jobs,
    job_in_flight,
    requeue_stale_jobs,
    run_job,
)
from webapp.services.model_admin import start_rebuild, start_retrain


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


# A main process killed mid-run reports nothing: a job silent past its task's time limit is lost.


def _silent_job(kind: str, silent_minutes: float, created_minutes_ago: float, **fields) -> Job:
    now = utcnow()
    job = Job(
        kind=kind,
        status="running",
        created_at=now - timedelta(minutes=created_minutes_ago),
        started_at=now - timedelta(minutes=created_minutes_ago),
        heartbeat_at=now - timedelta(minutes=silent_minutes),
        **fields,
    )
    db.session.add(job)
    db.session.commit()
    return job


def test_a_build_lost_with_its_worker_no_longer_blocks_a_rebuild(app, sent):
    active = ModelVersion(name="serving", status="active")
    lost_version = ModelVersion(name="half built", status="building")
    db.session.add_all([active, lost_version])
    db.session.commit()
    limit = JOB_KINDS["build_version"].time_limit / 60
    lost = _silent_job("build_version", limit + 5, limit + 60, params={"version_id": lost_version.id})
    version, job = start_rebuild()  # refused for 6 hours before: the lost row said "running"
    assert job.status == "queued" and sent == [("inference.build_version", [job.id])]
    db.session.expire_all()
    assert lost.status == "failed" and lost.error.startswith("worker lost") and lost.finished_at is not None
    assert db.session.get(ModelVersion, lost_version.id).status == "failed"


def test_a_long_run_that_keeps_reporting_is_never_taken_for_lost(app, sent):
    db.session.add(ModelVersion(name="serving", status="active"))
    db.session.commit()
    alive = _silent_job("fine_tune", 1, 10 * 60)  # started ten hours ago, reported a minute ago
    with pytest.raises(InputError, match=f"already running as job {alive.id}"):
        start_retrain()
    assert fail_stale_jobs() == [] and alive.status == "running" and sent == []


def test_each_kind_is_stale_after_its_own_task_limit(app):
    for kind, spec in JOB_KINDS.items():
        just_inside = _silent_job(kind, spec.time_limit / 60 - 1, spec.time_limit / 60 + 30)
        past = _silent_job(kind, spec.time_limit / 60 + 1, spec.time_limit / 60 + 30)
        assert job_in_flight(kind).id == just_inside.id
        assert past.status == "failed" and "worker lost" in past.error
    queued = Job(kind="context_fit", status="queued", created_at=utcnow() - timedelta(hours=1))
    db.session.add(queued)
    db.session.commit()
    assert [j.id for j in fail_stale_jobs()] == [queued.id]  # never started within the limit either


def test_the_tasks_take_their_limits_from_the_one_table(app):
    from worker.tasks import inference, ranking, training

    for task, kind in (
        (inference.build_version, "build_version"),
        (inference.embed_products, "embed_products"),
        (training.fine_tune, "fine_tune"),
        (ranking.fit_context, "context_fit"),
    ):
        assert (task.soft_time_limit, task.time_limit) == (JOB_KINDS[kind].soft_limit, JOB_KINDS[kind].time_limit)
        assert task.name == JOB_TASKS[kind]


def test_progress_is_a_heartbeat_and_a_failed_build_fails_its_version(app):
    version = ModelVersion(name="doomed", status="building")
    db.session.add(version)
    db.session.commit()
    job = Job(kind="build_version", status="queued", params={"version_id": version.id})
    db.session.add(job)
    db.session.commit()
    beats = []

    def work(job, progress):
        progress(1, 2)
        beats.append(job.heartbeat_at)
        raise ValueError("the catalog has no active products to embed")

    with pytest.raises(ValueError):
        run_job(job.id, work)
    db.session.expire_all()
    assert beats[0] is not None and beats[0] >= job.started_at
    assert db.session.get(Job, job.id).status == "failed"
    stored = db.session.get(ModelVersion, version.id)
    assert stored.status == "failed" and "no active products" in stored.metrics["error"]


def test_a_transient_database_error_keeps_the_version_for_the_retry(app):
    version = ModelVersion(name="retried", status="building")
    db.session.add(version)
    db.session.commit()
    job = Job(kind="build_version", status="queued", params={"version_id": version.id})
    db.session.add(job)
    db.session.commit()

    def work(job, progress):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    with pytest.raises(OperationalError):
        run_job(job.id, work)
    db.session.expire_all()
    assert db.session.get(ModelVersion, version.id).status == "building"


def test_the_admin_shows_a_lost_worker(app, client, login):
    lost = _silent_job("context_fit", 60, 120)
    login("analyst")
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "worker lost" in page
    state = client.get(f"/admin/jobs/{lost.id}.json").get_json()
    assert state["status"] == "failed" and state["worker_lost"] is True


def test_a_lost_fine_tune_fails_the_version_it_was_building(app):
    building = ModelVersion(name="fine-tune of v1", status="building")
    db.session.add(building)
    db.session.commit()
    limit = JOB_KINDS["fine_tune"].time_limit / 60
    lost = _silent_job("fine_tune", limit + 1, limit + 30, result={"version_id": building.id, "logs": []})
    assert [j.id for j in fail_stale_jobs()] == [lost.id]
    assert db.session.get(ModelVersion, building.id).status == "failed"
