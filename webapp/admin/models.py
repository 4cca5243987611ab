"""Model versions: status and offline metrics, activate, roll back, retrain, rebuild."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from webapp.admin import bp
from webapp.auth import recent_auth
from webapp.errors import InputError
from webapp.services.model_admin import (
    NDCG_METRICS,
    OTHER_METRICS,
    list_versions,
    ranker_label,
    start_rebuild,
    start_retrain,
)
from webapp.services.model_versions import activate_version, active_version, rollback_version
from webapp.services.serving_version import serving_status


@bp.get("/models")
def models():
    """Versions, what this web worker serves, and the buttons that change it."""
    versions = list_versions()
    return render_template(
        "admin/models.html",
        versions=versions,
        serves={v.id: ranker_label(v) for v in versions},
        active=active_version(),
        serving=serving_status(),
        ndcg_metrics=NDCG_METRICS,
        other_metrics=OTHER_METRICS,
    )


def _flash_outcome(action) -> None:
    try:
        flash(action(), "info")
    except InputError as exc:
        flash(str(exc), "error")


@bp.post("/models/<int:version_id>/activate")
@recent_auth
def models_activate(version_id: int):
    """Serve a ready or retired version to all traffic (refused if its artifacts do not load)."""
    _flash_outcome(lambda: f"Version {activate_version(version_id).id} is active; web workers switch within seconds.")
    return redirect(url_for("admin.models"))


@bp.post("/models/rollback")
@recent_auth
def models_rollback():
    """Go back to the version that served before the current one."""
    _flash_outcome(lambda: f"Rolled back: version {rollback_version().id} is active.")
    return redirect(url_for("admin.models"))


@bp.post("/models/retrain")
def models_retrain():
    """Fine-tune the active version on recent feedback (a job on the training queue)."""
    try:
        job = start_retrain()
    except InputError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.models"))
    flash(f"Retrain queued as job {job.id}.", "info")
    return redirect(url_for("admin.jobs_detail", job_id=job.id))


@bp.post("/models/rebuild")
def models_rebuild():
    """Re-embed the catalog into a new version from the active one (a job on the inference queue)."""
    try:
        version, job = start_rebuild()
    except InputError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.models"))
    flash(f"Version {version.id} is building as job {job.id}; activate it here when it is ready.", "info")
    return redirect(url_for("admin.jobs_detail", job_id=job.id))
