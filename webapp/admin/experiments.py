"""A/B experiments: the list, the create form, and one experiment's dashboard and controls."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import abort, flash, redirect, render_template, request, url_for

from engine.experiments.metrics import METRICS
from engine.serving.bundle import RETRIEVAL_MODES
from webapp.admin import bp
from webapp.auth import admin_only, recent_auth
from webapp.errors import InputError
from webapp.models import Experiment
from webapp.services.experiment_dashboard import build_dashboard
from webapp.services.experiment_snapshots import take_snapshot
from webapp.services.experiments import (
    SERVABLE,
    VariantSpec,
    create_experiment,
    get_experiment,
    list_experiments,
    pause_experiment,
    promote_winner,
    resume_experiment,
    running_experiment_row,
    start_experiment,
    stop_experiment,
    variants_of,
)
from webapp.services.model_admin import list_versions

LEXICAL = "lexical"
FORM_VARIANTS = 4  # rows on the create form; the service takes more


@bp.get("/experiments")
def experiments():
    """Experiments newest first, with the one running (only one runs at a time)."""
    return render_template("admin/experiments.html", experiments=list_experiments(), running=running_experiment_row())


def _number(form: Mapping[str, str], key: str, label: str) -> float:
    raw = (form.get(key) or "").strip()
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"{label}: {raw or 'nothing'} is not a number") from None


def variants_from_form(form: Mapping[str, str]) -> list[VariantSpec]:
    """The variant rows that have a name; the first is the control; shares are percentages."""
    specs = []
    for i in range(FORM_VARIANTS):
        name = (form.get(f"variant-{i}-name") or "").strip()
        if not name:
            continue
        version = (form.get(f"variant-{i}-version") or LEXICAL).strip()
        if version != LEXICAL and not version.isdigit():
            raise InputError(f"variant {name!r}: choose a model version or lexical")
        mode = (form.get(f"variant-{i}-mode") or "").strip() or None
        share = _number(form, f"variant-{i}-share", f"traffic % of {name!r}") / 100
        specs.append(
            VariantSpec(
                name=name,
                traffic_share=share,
                model_version_id=None if version == LEXICAL else int(version),
                retrieval_mode=mode,
                is_control=not specs,
            )
        )
    return specs


def _form_page(form: Mapping[str, str], status: int = 200):
    versions = [v for v in list_versions() if v.status in SERVABLE]
    return render_template(
        "admin/experiment_form.html",
        form=form,
        metrics=METRICS,
        versions=versions,
        modes=RETRIEVAL_MODES,
        rows=range(FORM_VARIANTS),
        running=running_experiment_row(),
    ), status


@bp.route("/experiments/new", methods=["GET", "POST"])
@admin_only
def experiments_new():
    """Create a draft experiment from the form; it starts from its dashboard."""
    if request.method == "GET":
        return _form_page({})
    form = request.form
    try:
        experiment = create_experiment(
            name=form.get("name", ""),
            description=form.get("description", ""),
            primary_metric=form.get("primary_metric", ""),
            alpha=_number(form, "alpha", "alpha"),
            sequential=form.get("sequential") == "on",
            variants=variants_from_form(form),
        )
    except InputError as exc:
        flash(str(exc), "error")
        return _form_page(form, 400)
    flash(f"Created experiment {experiment.id} as a draft; start it when you are ready.", "info")
    return redirect(url_for("admin.experiments_detail", experiment_id=experiment.id))


def _experiment(experiment_id: int) -> Experiment:
    return get_experiment(experiment_id) or abort(404, f"There is no experiment {experiment_id}.")


@bp.get("/experiments/<int:experiment_id>")
def experiments_detail(experiment_id: int):
    """The dashboard: status and controls, verdicts, every metric with intervals, charts over time."""
    experiment = _experiment(experiment_id)
    variants = {v.id: v for v in variants_of(experiment.id)}
    return render_template(
        "admin/experiment.html",
        experiment=experiment,
        dash=build_dashboard(experiment),
        winner=variants.get(experiment.winner_variant_id),
        running=running_experiment_row(),
    )


def _act(experiment_id: int, action: Callable[[], str]):
    _experiment(experiment_id)
    try:
        flash(action(), "info")
    except InputError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.experiments_detail", experiment_id=experiment_id))


@bp.post("/experiments/<int:experiment_id>/start")
def experiments_start(experiment_id: int):
    """Start a draft (refused while another experiment runs)."""
    return _act(
        experiment_id, lambda: f"Started {start_experiment(experiment_id).name}; workers pick it up within seconds."
    )


@bp.post("/experiments/<int:experiment_id>/pause")
def experiments_pause(experiment_id: int):
    """Pause: everyone gets the default search until it resumes."""
    return _act(experiment_id, lambda: f"Paused {pause_experiment(experiment_id).name}.")


@bp.post("/experiments/<int:experiment_id>/resume")
def experiments_resume(experiment_id: int):
    """Resume a paused experiment; visitors keep their variants."""
    return _act(experiment_id, lambda: f"Resumed {resume_experiment(experiment_id).name}.")


@bp.post("/experiments/<int:experiment_id>/stop")
@recent_auth
def experiments_stop(experiment_id: int):
    """Stop for good; the results stay readable."""
    return _act(experiment_id, lambda: f"Stopped {stop_experiment(experiment_id).name}.")


@bp.post("/experiments/<int:experiment_id>/promote")
@recent_auth
def experiments_promote(experiment_id: int):
    """Serve one variant to all traffic and stop the experiment."""
    variant_id = request.form.get("variant_id", type=int)
    names = {v.id: v.name for v in variants_of(experiment_id)}
    if variant_id not in names:
        raise InputError("choose one of the experiment's variants to promote")

    def promote() -> str:
        promote_winner(experiment_id, variant_id)
        return f"Promoted {names[variant_id]}: it serves all traffic now, and the experiment is stopped."

    return _act(experiment_id, promote)


@bp.post("/experiments/<int:experiment_id>/snapshot")
def experiments_snapshot(experiment_id: int):
    """Store the metrics now as a point on the charts (the beat does this hourly)."""
    return _act(experiment_id, lambda: f"Snapshot {take_snapshot(experiment_id).id} stored.")
