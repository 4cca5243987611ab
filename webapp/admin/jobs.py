"""Background jobs: the list, and one job's live progress (polled as JSON by static JS)."""

from __future__ import annotations

from flask import abort, jsonify, render_template, request

from webapp.admin import bp
from webapp.models import JOB_STATUSES
from webapp.services.job_view import ready_version
from webapp.services.model_admin import get_job, job_kinds, job_state, list_jobs


@bp.get("/jobs")
def jobs():
    """Jobs newest first, filterable by kind and status."""
    kind = request.args.get("kind", "")[:50]
    status = request.args.get("status", "")
    page = list_jobs(kind, status, request.args.get("page", 1, type=int))
    return render_template(
        "admin/jobs.html", page=page, kind=kind, status=status, kinds=job_kinds(), statuses=JOB_STATUSES
    )


@bp.get("/jobs/<int:job_id>")
def jobs_detail(job_id: int):
    """One job: progress, message, error, result and logs, refreshed while it runs."""
    job = get_job(job_id) or abort(404, f"There is no job {job_id}.")
    return render_template("admin/job.html", job=job, state=job_state(job), ready=ready_version(job))


@bp.get("/jobs/<int:job_id>.json")
def jobs_json(job_id: int):
    """The job's state for the progress page's polling."""
    job = get_job(job_id) or abort(404, f"There is no job {job_id}.")
    response = jsonify(job_state(job))
    response.headers["Cache-Control"] = "no-store"
    return response
