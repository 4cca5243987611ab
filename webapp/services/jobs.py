"""Background jobs: create a job row, enqueue its task after commit, and run it with progress."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from webapp.celery_wiring import enqueue
from webapp.extensions import db
from webapp.models import Job, utcnow

Work = Callable[[Job, Callable[[int, int], None]], dict]
_TERMINAL = ("succeeded", "cancelled")
# The task behind each kind of job, for sending a job again whose message was lost.
JOB_TASKS = {
    "catalog_import": "catalog.import_file",
    "build_version": "inference.build_version",
    "embed_products": "inference.embed_products",
    "fine_tune": "training.fine_tune",
    "tune": "training.tune",
    "context_fit": "ranking.fit_context",
}


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


def fail_lost_job(job_id: int, reason: str) -> None:
    """Mark a job failed when its worker died and Celery will not run it again."""
    job = db.session.get(Job, job_id)
    if job is not None and job.status in ("queued", "running"):
        job.status, job.error, job.finished_at = "failed", reason[:5000], utcnow()
        db.session.commit()


def _progress_writer(job: Job) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        job.progress = round(done / total, 4) if total else 1.0
        job.message = f"{done} of {total}"
        db.session.commit()

    return progress


def run_job(job_id: int, work: Work) -> dict | None:
    """Run work for a job row: skip if already done, record progress, result or error."""
    job = db.session.get(Job, job_id)
    if job is None or job.status in _TERMINAL:
        return None  # deleted, or a redelivery of finished work
    job.status, job.started_at, job.error = "running", utcnow(), ""
    db.session.commit()
    try:
        result = work(job, _progress_writer(job))
    except Exception as exc:
        db.session.rollback()
        job = db.session.get(Job, job_id)
        job.status, job.error, job.finished_at = "failed", f"{type(exc).__name__}: {exc}"[:5000], utcnow()
        db.session.commit()
        raise  # Celery must see the failure too
    job.status, job.progress, job.result, job.finished_at = "succeeded", 1.0, result, utcnow()
    db.session.commit()
    return result
