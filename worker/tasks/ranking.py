"""Ranking tasks: fitting the stage-2 context ranker on logged feedback (training queue).

Two callers: the admin's "Refit now" (a job row, so the console shows its progress) and
Celery beat every CONTEXT_FIT_INTERVAL_SECONDS (no job row: the fit history records it,
and a fit every few minutes would bury the jobs list). Both are idempotent: a finished job
is not run again, and beat fits only when searches arrived since the newest fit.
"""

from __future__ import annotations

from celery import shared_task
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from webapp.extensions import db
from webapp.models import ContextRankerFit
from webapp.services.context_fit import fit_context_ranker_from_logs, fit_summary, stored_search_count
from webapp.services.jobs import JOB_KINDS, run_job
from worker.schedule import run_scheduled

SOFT_LIMIT = JOB_KINDS["context_fit"].soft_limit


def run_context_fit_job(job_id: int) -> dict | None:
    """A fit on a job row: progress while reading, the fit's outcome as the job's result."""

    def work(job, progress) -> dict:
        row = fit_context_ranker_from_logs(progress)
        job.message = f"ranker fit {row.id}: {row.status}"
        return fit_summary(row)

    return run_job(job_id, work)


def scheduled_context_fit() -> dict:
    """Beat's fit: skipped when no search arrived since the newest fit read its log."""
    newest = db.session.scalars(select(ContextRankerFit).order_by(ContextRankerFit.id.desc())).first()
    if newest is not None and stored_search_count() == (newest.metrics or {}).get("search_rows"):
        return {"fitted": False, "reason": f"no search since fit {newest.id}"}
    return {"fitted": True, **fit_summary(fit_context_ranker_from_logs())}


@shared_task(
    name="ranking.fit_context",
    soft_time_limit=SOFT_LIMIT,
    time_limit=JOB_KINDS["context_fit"].time_limit,
    acks_late=True,  # idempotent (see the module docstring): a redelivery after a lost worker is safe
    autoretry_for=(OperationalError,),  # the database blinking is transient; a bad log is not
    retry_backoff=30,
    max_retries=3,
)
def fit_context(job_id: int | None = None) -> dict | None:
    """Fit the context ranker: for the job row given, or (from beat, no id) when there are new searches."""
    if job_id is None:
        return run_scheduled("kairos-context-fit", scheduled_context_fit)
    return run_context_fit_job(job_id)
