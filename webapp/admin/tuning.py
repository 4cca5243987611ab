"""Hyperparameter search: start a study, watch its trials (table and chart), publish the best trial's version."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from webapp.admin import bp
from webapp.errors import InputError
from webapp.services.tuning import best_trial, chart, publish_best, start_tune, trials, tune_jobs


@bp.get("/models/tune")
def models_tune():
    """The newest searches; the chosen (or newest) one's trials, their chart, and its best trial."""
    jobs = tune_jobs()
    chosen = next((j for j in jobs if j.id == request.args.get("job", type=int)), jobs[0] if jobs else None)
    rows = trials(chosen, current_app.config["TUNE_STORAGE_URL"]) if chosen else []
    return render_template(
        "admin/tune.html", jobs=jobs, job=chosen, trials=rows, best=best_trial(rows), chart=chart(rows)
    )


@bp.post("/models/tune")
def models_tune_start():
    """Queue a study on the training queue (trials and a time budget from the form)."""
    try:
        job = start_tune(request.form.get("trials", 10, type=int), request.form.get("timeout", 14400.0, type=float))
    except InputError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.models_tune"))
    flash(f"Hyperparameter search queued as job {job.id}.", "info")
    return redirect(url_for("admin.models_tune", job=job.id))


@bp.post("/models/tune/<int:job_id>/publish")
def models_tune_publish(job_id: int):
    """Serve the best trial's version (it passed the normal gate when it was built)."""
    try:
        version = publish_best(job_id, current_app.config["TUNE_STORAGE_URL"])
        flash(f"Version {version.id}, the best trial's, is active; web workers switch within seconds.", "info")
    except InputError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.models_tune", job=job_id))
