"""Catalog tasks: a file import run in the background, its progress on a job row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from celery import shared_task
from flask import current_app
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Job, Product, utcnow
from webapp.services.catalog_import import ImportOptions, import_catalog, read_limits
from webapp.services.jobs import run_job, start_job
from webapp.services.model_versions import active_version


@shared_task(name="catalog.import_file", soft_time_limit=600, time_limit=660, acks_late=True)
def import_file(job_id: int) -> dict | None:
    """Import the file named in the job's params, then queue the embedding of what changed for the
    active version's artifacts; idempotent (an upsert), so safe to re-run. An uploaded file
    (params "delete_after") is deleted once its import has finished, well or not."""
    try:
        return run_job(job_id, _import_and_embed)
    finally:
        job = db.session.get(Job, job_id)
        if job is not None and job.params.get("delete_after") and job.status in ("succeeded", "failed"):
            Path(job.params["path"]).unlink(missing_ok=True)


def _import_and_embed(job: Job, progress: Callable[[int, int], None]) -> dict:
    since = _first_start(job)
    options = ImportOptions(reactivate=bool(job.params.get("reactivate")), established=job.params.get("established"))
    report = import_catalog(job.params["path"], progress, options, read_limits(current_app.config)).as_dict()
    return {**report, "changed_since": since.isoformat(), **queue_embedding(since)}


def _first_start(job: Job) -> datetime:
    """When this job first started, kept on its row: a re-run must still find what the first run changed
    (re-importing unchanged rows leaves their updated_at alone). Both stamps come from worker clocks."""
    stamp = (job.result or {}).get("changed_since")
    if stamp is None:
        stamp = utcnow().isoformat()
        job.result = {"changed_since": stamp}
        db.session.commit()
    return datetime.fromisoformat(stamp)


def queue_embedding(since: datetime) -> dict:
    """Have the active version embed the products created, edited or deactivated since then (a job)."""
    version = active_version()
    if version is None:
        return {}  # lexical search only: nothing to embed into
    ids = db.session.scalars(select(Product.id).where(Product.updated_at >= since).order_by(Product.id)).all()
    if not ids:
        return {}
    job = start_job("embed_products", "inference.embed_products", {"version_id": version.id, "product_ids": ids})
    return {"embed_job_id": job.id, "embed_products": len(ids)}
