"""Inference-queue tasks: building a model version's embeddings and ONNX encoder."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy.exc import OperationalError

from webapp.services.jobs import run_job


@shared_task(
    name="inference.build_version",
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 120,
    acks_late=True,  # idempotent: a redelivered build starts over from a clean directory
    autoretry_for=(OperationalError,),  # the database blinking is transient; bad artifacts are not
    retry_backoff=30,
    max_retries=3,
)
def build_version(job_id: int) -> dict | None:
    """Build the version named in the job's params; re-running rebuilds from scratch (idempotent)."""
    from worker.building.version_build import build_version as build  # torch loads in the child only

    return run_job(job_id, lambda job, progress: build(job.params["version_id"], progress))
