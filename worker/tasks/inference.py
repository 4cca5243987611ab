"""Inference-queue tasks: building a model version's embeddings and ONNX encoder, and embedding
a list of products into an existing version's vectors."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy.exc import OperationalError

from webapp.services.jobs import JOB_KINDS, run_job


@shared_task(
    name="inference.build_version",
    soft_time_limit=JOB_KINDS["build_version"].soft_limit,
    time_limit=JOB_KINDS["build_version"].time_limit,
    acks_late=True,  # idempotent: a redelivered build starts over from a clean directory
    autoretry_for=(OperationalError,),  # the database blinking is transient; bad artifacts are not
    retry_backoff=30,
    max_retries=3,
)
def build_version(job_id: int) -> dict | None:
    """Build the version named in the job's params; re-running rebuilds from scratch (idempotent)."""
    from worker.building.version_build import build_version as build  # torch loads in the child only

    return run_job(job_id, lambda job, progress: build(job.params["version_id"], progress))


@shared_task(
    name="inference.embed_products",
    soft_time_limit=JOB_KINDS["embed_products"].soft_limit,
    time_limit=JOB_KINDS["embed_products"].time_limit,
    acks_late=True,  # idempotent: the same products embed to the same vectors, merged by id
    autoretry_for=(OperationalError,),
    retry_backoff=30,
    max_retries=3,
)
def embed_products(job_id: int) -> dict | None:
    """Embed the job's product_ids with its version_id's encoder and merge them into that version's vectors."""
    from worker.building.product_embedding import embed_products as embed  # torch loads in the child only

    return run_job(job_id, lambda job, progress: embed(job.params["version_id"], job.params["product_ids"], progress))
