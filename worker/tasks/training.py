"""Training-queue tasks: a fine-tune run (one at a time, logged on its job row) and the beat's check.

The job row is the run's interface: status, progress, message, and result["logs"] (a list
of lines) while it runs; an admin cancels by setting its status to "cancelled", which the
training loop notices between steps. A run holds a lock for its whole length, refreshed as
it reports (Redis when the broker is Redis, the job table otherwise); a worker that dies
stops refreshing it, so a re-run of the same job later takes it over and resumes from the
last checkpoint.
"""

from __future__ import annotations

import time

from celery import shared_task
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.models import Job, utcnow
from webapp.services.jobs import JOB_KINDS
from worker.schedule import TrainingLock, training_lock

SOFT_LIMIT = JOB_KINDS["fine_tune"].soft_limit
MAX_LOG_LINES = 400
REPORT_SECONDS = 2.0


class JobReporter:
    """Writes a running job's logs, progress and heartbeat, and reads whether it was cancelled."""

    def __init__(self, job: Job, lock: TrainingLock) -> None:
        self.job_id = job.id
        self.lock = lock
        self.job = job
        self._last_write = 0.0
        self._last_check = 0.0
        self._cancelled = False

    def _save(self, force: bool = False, **values: object) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < REPORT_SECONDS:
            return
        result = dict(self.job.result or {})
        result.update(values, heartbeat=utcnow().isoformat())
        self.job.result = result
        self.job.heartbeat_at = utcnow()
        db.session.commit()
        self.lock.refresh()
        self._last_write = now

    def log(self, line: str) -> None:
        """Append a timestamped line to result["logs"] (the newest MAX_LOG_LINES are kept)."""
        current_app.logger.info("fine-tune job %s: %s", self.job_id, line)
        logs = list((self.job.result or {}).get("logs", []))[-(MAX_LOG_LINES - 1) :]
        logs.append(f"{utcnow():%H:%M:%S} {line}")
        self.job.message = line[:500]
        self._save(force=True, logs=logs)

    def progress(self, done: int, total: int) -> None:
        self.job.progress = round(done / total, 4) if total else 1.0
        self._save()

    def remember(self, key: str, value: object) -> None:
        self._save(force=True, **{key: value})

    def recall(self, key: str) -> object:
        return (self.job.result or {}).get(key)

    def cancelled(self) -> bool:
        """Whether an admin set the job to cancelled (read fresh, at most every REPORT_SECONDS)."""
        now = time.monotonic()
        if not self._cancelled and now - self._last_check >= REPORT_SECONDS:
            db.session.commit()  # end the read snapshot so the admin's write is visible
            status = db.session.scalar(select(Job.status).where(Job.id == self.job_id))
            self._cancelled = status == "cancelled"
            self._last_check = now
        return self._cancelled


def _finish(job_id: int, status: str, result: dict, error: str = "") -> None:
    job = db.session.get(Job, job_id)
    if job.status == "cancelled":
        status = "cancelled"  # the admin's word stands even if the run got further
    job.status, job.error, job.finished_at = status, error[:5000], utcnow()
    job.result = {**(job.result or {}), **result}
    if status == "succeeded":
        job.progress, job.message = 1.0, f"v{result.get('version_id')} ready"
    elif error:
        job.message = error[:500]
    db.session.commit()


def _refuse(job_id: int, reason: str, hint: str = "") -> dict:
    """End the job as "refused": nothing broke, the run declined (the reason is its message, once;
    result["next_step"] says what would let it run)."""
    refused = {"refused": reason, **({"next_step": hint} if hint else {})}
    _finish(job_id, "refused", refused)
    job = db.session.get(Job, job_id)
    if job.status == "refused":
        job.message = reason[:500]
        db.session.commit()
    return refused


def run_fine_tune_job(job_id: int) -> dict | None:
    """The task body: lock, run, record; returns the result (None when there was nothing to do)."""
    from worker.building.fine_tune import FineTuneRefused, Hooks, run_fine_tune  # torch: worker child only

    job = db.session.get(Job, job_id)
    if job is None or job.status in ("succeeded", "cancelled", "refused"):
        return None  # deleted, or a redelivery of finished work (a failed run may be retried: it resumes)
    lock = training_lock(job_id)
    holder = lock.acquire()
    if holder == job_id:
        return None  # this job is running in a live worker already (a duplicate delivery)
    if holder is not None:
        return _refuse(
            job_id,
            f"another fine-tune (job {holder}) is running; only one runs at a time",
            f"Wait for job {holder} to finish, then retrain again if it did not publish.",
        )
    try:
        job.status, job.started_at, job.error = "running", job.started_at or utcnow(), ""
        db.session.commit()
        reporter = JobReporter(job, lock)
        hooks = Hooks(reporter.log, reporter.progress, reporter.cancelled, reporter.remember, reporter.recall)
        try:
            result = run_fine_tune(job_id, job.created_at, dict(job.params or {}), hooks)
        except FineTuneRefused as exc:
            db.session.rollback()
            hooks.log(str(exc))
            return _refuse(job_id, str(exc), exc.hint)
        except Exception as exc:
            db.session.rollback()
            _finish(job_id, "failed", {}, f"{type(exc).__name__}: {exc}")
            raise  # Celery sees the failure; checkpoints stay for a re-run
        _finish(job_id, "cancelled" if result.get("cancelled") else "succeeded", result)
        return result
    finally:
        lock.release()


@shared_task(
    name="training.fine_tune",
    soft_time_limit=SOFT_LIMIT,
    time_limit=JOB_KINDS["fine_tune"].time_limit,
    acks_late=True,  # a worker that dies mid-run leaves the message for a re-run, which resumes
    autoretry_for=(OperationalError,),  # the database blinking is transient; a retry resumes too
    retry_backoff=30,
    max_retries=3,
)
def fine_tune(job_id: int) -> dict | None:
    """Fine-tune the job's parent_version_id on recent feedback; a re-run resumes from its checkpoint."""
    return run_fine_tune_job(job_id)


@shared_task(name="training.schedule_fine_tune", soft_time_limit=60, time_limit=90)
def schedule_fine_tune() -> dict:
    """Celery beat's check: start a fine-tune when enough new feedback arrived since the last one."""
    from worker.schedule import maybe_start_fine_tune, run_scheduled

    return run_scheduled("kairos-scheduled-fine-tune", maybe_start_fine_tune)
