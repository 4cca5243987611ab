"""Training-queue task: a hyperparameter search over fine-tuning settings (worker.building.tune).

It holds the training lock like a fine-tune (one training run at a time), reports on its job
row through the same JobReporter, and is acks_late: a worker killed mid-study leaves the
message, and the re-run resumes the study from its RDB storage.
"""

from __future__ import annotations

from celery import shared_task
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.models import Job, utcnow
from worker.schedule import training_lock
from worker.tasks.training import SOFT_LIMIT, JobReporter, _finish


def run_tune_job(job_id: int) -> dict | None:
    """The task body: lock, run or resume the study, record the trials; None when there was nothing to do."""
    from worker.building.fine_tune import FineTuneRefused, Hooks  # torch: worker child only
    from worker.building.tune import run_tune

    job = db.session.get(Job, job_id)
    if job is None or job.status in ("succeeded", "cancelled"):
        return None
    lock = training_lock(job_id)
    holder = lock.acquire()
    if holder == job_id:
        return None
    if holder is not None:
        job.status, job.finished_at = "failed", utcnow()
        job.error = job.message = f"another training run (job {holder}) is running; only one runs at a time"
        db.session.commit()
        return {"refused": job.error}
    try:
        job.status, job.started_at, job.error = "running", job.started_at or utcnow(), ""
        db.session.commit()
        reporter = JobReporter(job, lock)
        hooks = Hooks(reporter.log, reporter.progress, reporter.cancelled, reporter.remember, reporter.recall)
        try:
            result = run_tune(job_id, job.created_at, dict(job.params or {}), hooks)
        except (FineTuneRefused, ValueError) as exc:
            db.session.rollback()
            hooks.log(str(exc))
            _finish(job_id, "failed", {}, str(exc))
            return {"refused": str(exc)}
        except Exception as exc:
            db.session.rollback()
            _finish(job_id, "failed", {}, f"{type(exc).__name__}: {exc}")
            raise
        _finish(job_id, "succeeded", result)
        job = db.session.get(Job, job_id)
        best = result["best"]
        job.message = (
            f"best trial {best['number']}: {best['value']:.4f} (v{best['version_id']})" if best else "no trial"
        )
        db.session.commit()
        return result
    finally:
        lock.release()


@shared_task(
    name="training.tune",
    soft_time_limit=SOFT_LIMIT,
    time_limit=SOFT_LIMIT + 300,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=30,
    max_retries=3,
)
def tune(job_id: int) -> dict | None:
    """Run or resume the job's Optuna study over fine-tuning settings."""
    return run_tune_job(job_id)
