"""Background jobs: create a job row, enqueue its task after commit, and run it with progress.

A job's task touches its heartbeat each time it reports progress. No live run is silent for
longer than its task's hard time limit (Celery kills it then), so a queued or running job
whose last sign of life (heartbeat, start, creation) is older than that limit has lost its
worker: a Celery main process killed mid-run reports nothing. Such a job is failed as
"worker lost" the next time anyone asks whether one of its kind is in flight
(`job_in_flight`, the one check behind every "one job of this kind at a time") and by the
periodic sweep (`fail_stale_jobs`); a lost build's version is marked failed with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from webapp.celery_wiring import enqueue
from webapp.extensions import db
from webapp.models import Job, ModelVersion, utcnow

Work = Callable[[Job, Callable[[int, int], None]], dict]
_TERMINAL = ("succeeded", "cancelled")
IN_FLIGHT = ("queued", "running")
WORKER_LOST = "worker lost"  # how a stale job's error begins (the admin shows it as such)


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its task and the task's limits (the tasks take theirs from here)."""

    task: str
    soft_limit: float  # seconds: the task's soft_time_limit
    grace: float  # seconds after it until the hard time_limit kills the run

    @property
    def time_limit(self) -> float:
        return self.soft_limit + self.grace


JOB_KINDS = {
    "catalog_import": JobKind("catalog.import_file", 600, 60),
    "build_version": JobKind("inference.build_version", 3 * 3600, 120),
    # A whole catalog's worth of ids takes as long as a build's embedding.
    "embed_products": JobKind("inference.embed_products", 3 * 3600, 120),
    # The run's own FINE_TUNE_MAX_TRAIN_SECONDS keeps training well inside this.
    "fine_tune": JobKind("training.fine_tune", 4 * 3600, 300),
    # 50,000 pages read and fitted take a few minutes on one core.
    "context_fit": JobKind("ranking.fit_context", 15 * 60, 60),
    # Trials are fine-tunes run one after another within the same limit.
    "tune": JobKind("training.tune", 4 * 3600, 300),
}
# The task behind each kind of job, for sending a job again whose message was lost.
JOB_TASKS = {kind: spec.task for kind, spec in JOB_KINDS.items()}


def start_job(kind: str, task_name: str, params: dict) -> Job:
    """Record a queued job and enqueue its task (after the commit, so the task can read it)."""
    job = Job(kind=kind, status="queued", params=params)
    db.session.add(job)
    db.session.commit()
    job_id = job.id
    try:
        job.celery_task_id = enqueue(task_name, job_id)
    except Exception as exc:
        # Never leave a "queued" row that no worker will ever receive (the broker is down or
        # misconfigured): fail it with the reason, then let the caller report it.
        db.session.rollback()
        job = db.session.get(Job, job_id)
        job.status, job.error, job.finished_at = "failed", f"could not enqueue {task_name}: {exc}"[:5000], utcnow()
        db.session.commit()
        raise
    db.session.commit()
    return job


def requeue_stale_jobs(older_than_seconds: float) -> list[Job]:
    """Send again the queued jobs that no worker started within older_than_seconds.

    Their message was lost: a broker restarted without persistence keeps no queue. A copy that
    does arrive later is harmless: the second run finds the job succeeded and returns early."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    stale = select(Job).where(Job.status == "queued", Job.created_at <= cutoff, Job.kind.in_(JOB_TASKS))
    sent = []
    for job in db.session.scalars(stale.order_by(Job.id)).all():
        job.celery_task_id = enqueue(JOB_TASKS[job.kind], job.id)
        db.session.commit()  # one by one: a broker lost half way leaves the rest for the next run
        sent.append(job)
    return sent


def _fail(job: Job, reason: str) -> None:
    """Fail a job in the session; the version it was building, which will now never finish, is failed too."""
    job.status, job.error, job.finished_at = "failed", reason[:5000], utcnow()
    # A build names its version in its params; a fine-tune remembers the one it created in its result.
    holder = {"build_version": job.params, "fine_tune": job.result}.get(job.kind) or {}
    version_id = holder.get("version_id")
    version = db.session.get(ModelVersion, version_id) if isinstance(version_id, int) else None
    if version is not None and version.status == "building":
        version.status, version.metrics = "failed", {**(version.metrics or {}), "error": reason[:2000]}


def fail_lost_job(job_id: int, reason: str) -> None:
    """Mark a job failed when its worker died and Celery will not run it again."""
    job = db.session.get(Job, job_id)
    if job is not None and job.status in IN_FLIGHT:
        _fail(job, reason)
        db.session.commit()


def last_sign_of_life():
    """SQL for when a job last showed it was alive: its heartbeat, else its start, else its creation."""
    return func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at)


def fail_stale_jobs(kind: str | None = None) -> list[Job]:
    """Fail the queued or running jobs (of one kind, or all) silent for longer than their task's
    time limit, as "worker lost"; one transaction."""
    now, failed = utcnow(), []
    for name, spec in JOB_KINDS.items():
        if kind is not None and name != kind:
            continue
        cutoff = now - timedelta(seconds=spec.time_limit)
        stale = select(Job).where(Job.kind == name, Job.status.in_(IN_FLIGHT), last_sign_of_life() < cutoff)
        for job in db.session.scalars(stale.order_by(Job.id)).all():
            seen = job.heartbeat_at or job.started_at or job.created_at
            _fail(
                job,
                f"{WORKER_LOST}: no sign of life since {seen:%Y-%m-%d %H:%M} UTC, longer than the "
                f"{spec.time_limit / 60:.0f} min its task may run (the worker died or was killed mid-run)",
            )
            failed.append(job)
    if failed:
        db.session.commit()
    return failed


def job_in_flight(kind: str) -> Job | None:
    """The newest queued or running job of this kind that is still alive (stale ones are failed first)."""
    fail_stale_jobs(kind)
    return db.session.scalar(
        select(Job).where(Job.kind == kind, Job.status.in_(IN_FLIGHT)).order_by(Job.id.desc()).limit(1)
    )


def _progress_writer(job: Job) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        job.progress = round(done / total, 4) if total else 1.0
        job.message = f"{done} of {total}"
        job.heartbeat_at = utcnow()
        db.session.commit()

    return progress


def run_job(job_id: int, work: Work) -> dict | None:
    """Run work for a job row: skip if already done, record progress, result or error."""
    job = db.session.get(Job, job_id)
    if job is None or job.status in _TERMINAL:
        return None  # deleted, or a redelivery of finished work
    job.status, job.started_at, job.error = "running", utcnow(), ""
    job.heartbeat_at = job.started_at
    db.session.commit()
    try:
        result = work(job, _progress_writer(job))
    except Exception as exc:
        db.session.rollback()
        job = db.session.get(Job, job_id)
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, OperationalError):  # transient: the task retries, so a build's version stays building
            job.status, job.error, job.finished_at = "failed", reason[:5000], utcnow()
        else:
            _fail(job, reason)  # a failed build's version is failed with it, never left "building"
        db.session.commit()
        raise  # Celery must see the failure too
    job.status, job.progress, job.result, job.finished_at = "succeeded", 1.0, result, utcnow()
    db.session.commit()
    return result
