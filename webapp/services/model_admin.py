"""Model and job use cases for the admin: start a retrain or a rebuild, list and read jobs.

Activation and rollback are webapp.services.model_versions'; this module only adds what
the console's buttons need on top: one job of a kind at a time, and a job as JSON for the
live progress page.
"""

from __future__ import annotations

from pathlib import Path

from flask_sqlalchemy.pagination import Pagination
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import select

from engine.serving.bundle import RANKER
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import JOB_STATUSES, Job, ModelVersion
from webapp.services.job_view import result_rows, shown_message
from webapp.services.jobs import IN_FLIGHT, JOB_KINDS, WORKER_LOST, fail_stale_jobs, job_in_flight, start_job
from webapp.services.model_versions import active_version, create_version

# Offline metrics shown per version, in this order: (key of ModelVersion.metrics, column label).
# Validation only: the test half is never shown where versions are chosen (`flask eval --split test`).
NDCG_METRICS = (
    ("validation_ndcg10_lexical", "lexical"),
    ("validation_ndcg10_dense", "dense"),
    ("validation_ndcg10_rrf", "RRF"),
    ("validation_ndcg10_hybrid", "hybrid"),
)
OTHER_METRICS = (
    ("served_pipeline", "serves"),
    ("validation_queries", "queries"),
    ("serve_variant", "encoder"),
    ("int8_relative_drop", "int8 drop"),
)
TERMINAL = ("succeeded", "failed", "cancelled", "refused")
PER_PAGE = 30


def list_versions() -> list[ModelVersion]:
    """Every model version, newest first."""
    return list(db.session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def ranker_label(version: ModelVersion) -> str:
    """The name searches served by this version report (as the API's "ranker" and Explain do):
    hybrid without a learned ranker kept by the build is RRF."""
    mode = version.retrieval_mode
    if mode == "lexical":
        return "lexical"
    if mode == "dense":
        return f"dense:v{version.id}"
    kept = bool(version.artifact_path) and (Path(version.artifact_path) / RANKER).is_file()
    return f"{'ranker' if mode == 'hybrid' and kept else 'rrf'}:v{version.id}"


def _serving() -> ModelVersion:
    version = active_version()
    if version is None:
        raise InputError("no model version is active; build one first (flask --app webapp model bootstrap)")
    return version


def _refuse_if_running(kind: str, what: str) -> None:
    running = job_in_flight(kind)  # a job silent past its task's time limit is failed as worker lost
    if running is not None:
        raise InputError(f"{what} is already {running.status} as job {running.id}; wait for it to finish")


def _start(kind: str, task_name: str, params: dict) -> Job:
    """start_job, with an unreachable broker reported as a clear message (start_job fails the row)."""
    try:
        return start_job(kind, task_name, params)
    except BrokerUnavailable as exc:
        raise InputError(f"the job queue cannot be reached ({exc}); nothing was started") from None


def start_retrain() -> Job:
    """Queue a fine-tune of the active version on the training queue (one at a time)."""
    parent = _serving()
    _refuse_if_running("fine_tune", "a retrain")
    return _start("fine_tune", "training.fine_tune", {"parent_version_id": parent.id})


def start_rebuild() -> tuple[ModelVersion, Job]:
    """Queue a new version that re-embeds the catalog with the active version's encoder."""
    parent = _serving()
    _refuse_if_running("build_version", "a build")
    version = create_version(f"rebuild of v{parent.id}", retrieval_mode=parent.retrieval_mode, parent_id=parent.id)
    try:
        job = _start("build_version", "inference.build_version", {"version_id": version.id})
    except InputError:
        version.status = "failed"
        db.session.commit()
        raise
    return version, job


def list_jobs(kind: str = "", status: str = "", page: int = 1, per_page: int = PER_PAGE) -> Pagination:
    """Jobs newest first, optionally of one kind or status; jobs whose worker was lost read as failed."""
    fail_stale_jobs()
    stmt = select(Job)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if status in JOB_STATUSES:
        stmt = stmt.where(Job.status == status)
    return db.paginate(stmt.order_by(Job.id.desc()), page=page, per_page=per_page, error_out=False, count=True)


def job_kinds() -> list[str]:
    """The kinds of job that exist, for the filter."""
    return list(db.session.scalars(select(Job.kind).distinct().order_by(Job.kind)))


def get_job(job_id: int) -> Job | None:
    """One job, if it exists (failed first if its worker was lost)."""
    job = db.session.get(Job, job_id)
    if job is not None and job.status in IN_FLIGHT and job.kind in JOB_KINDS:
        fail_stale_jobs(job.kind)
    return job


def job_state(job: Job) -> dict:
    """A job as the progress page polls it: status, progress, message, error, result and logs."""
    result = dict(job.result or {})
    logs = result.pop("logs", [])

    def stamp(value):
        return value.isoformat(timespec="seconds") + "Z" if value else None

    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "done": job.status in TERMINAL,
        "progress": round(float(job.progress or 0.0), 4),
        "message": shown_message(job),
        "error": job.error,
        "worker_lost": job.status == "failed" and (job.error or "").startswith(WORKER_LOST),
        "params": job.params,
        "result": result,
        "result_rows": result_rows(result),
        "refused": result.get("refused", ""),
        "next_step": result.get("next_step", ""),
        "logs": [str(line) for line in logs] if isinstance(logs, list) else [str(logs)],
        "created_at": stamp(job.created_at),
        "started_at": stamp(job.started_at),
        "finished_at": stamp(job.finished_at),
    }
