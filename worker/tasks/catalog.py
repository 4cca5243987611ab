"""Catalog tasks: a file import run in the background, its progress on a job row."""

from __future__ import annotations

from celery import shared_task

from webapp.services.catalog_import import import_catalog
from webapp.services.jobs import run_job


@shared_task(name="catalog.import_file", soft_time_limit=600, time_limit=660, acks_late=True)
def import_file(job_id: int) -> dict | None:
    """Import the file named in the job's params; idempotent (an upsert), so safe to re-run."""
    return run_job(job_id, lambda job, progress: import_catalog(job.params["path"], progress).as_dict())
