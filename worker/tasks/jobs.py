"""Job housekeeping: jobs whose worker was lost are failed, so "one at a time" never waits on a dead run."""

from __future__ import annotations

from celery import shared_task

from webapp.services.jobs import fail_stale_jobs
from worker.schedule import run_scheduled


@shared_task(name="jobs.fail_stale", soft_time_limit=60, time_limit=90)
def fail_stale() -> dict:
    """Celery beat's sweep: fail every queued or running job silent past its task's time limit."""
    return run_scheduled("kairos-stale-jobs", lambda: {"failed": [job.id for job in fail_stale_jobs()]})
