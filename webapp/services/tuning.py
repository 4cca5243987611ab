"""Hyperparameter search use cases for the admin and the CLI: start a study, read its trials, publish the best.

The study runs on the training queue (worker.building.tune); its trials live in Optuna's RDB
storage (TUNE_STORAGE_URL), which this module reads directly so the page shows trials as
they finish. Every trial's version went through the normal gate when it was built: only a
version that passed it is 'ready', so publishing the best trial is activating that version.
"""

from __future__ import annotations

from sqlalchemy import select

from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Job, ModelVersion
from webapp.services.model_admin import _refuse_if_running, _serving, _start
from webapp.services.model_versions import activate_version

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 480, 160, 24


def start_tune(trials: int, timeout: float, parent_id: int | None = None) -> Job:
    """Queue a study of `trials` fine-tunes of the active (or given) version; one training run at a time."""
    if trials < 1 or trials > 500:
        raise InputError("trials must be between 1 and 500")
    if timeout <= 0:
        raise InputError("timeout must be a positive number of seconds")
    parent = db.session.get(ModelVersion, parent_id) if parent_id else _serving()
    if parent is None or parent.status not in ("ready", "active", "retired"):
        raise InputError(f"version {parent_id} is missing or not built")
    _refuse_if_running("tune", "a hyperparameter search")
    _refuse_if_running("fine_tune", "a retrain")
    return _start("tune", "training.tune", {"parent_version_id": parent.id, "trials": trials, "timeout": timeout})


def tune_jobs(limit: int = 10) -> list[Job]:
    """The newest hyperparameter searches."""
    return list(db.session.scalars(select(Job).where(Job.kind == "tune").order_by(Job.id.desc()).limit(limit)))


def study_name(job_id: int) -> str:
    """The Optuna study a tune job runs (worker.building.tune) and the admin reads."""
    return f"kairos-tune-job{job_id}"


def trial_rows(study) -> list[dict]:
    """Every trial of an Optuna study as the admin shows it: number, state, value, settings, version and gate."""
    return [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "version_id": t.user_attrs.get("version_id"),
            "gate": t.user_attrs.get("gate", ""),
        }
        for t in study.get_trials(deepcopy=False)
    ]


def trials(job: Job, storage_url: str) -> list[dict]:
    """The study's trials from its storage (number, state, value, settings, version, gate); [] before it starts."""
    import optuna  # only where a search is looked at: web workers need not load it

    try:
        study = optuna.load_study(study_name=study_name(job.id), storage=storage_url)
    except KeyError:  # no such study yet
        return list((job.result or {}).get("trials", []))
    return trial_rows(study)


def best_trial(rows: list[dict]) -> dict | None:
    """The finished trial with the highest validation NDCG@10."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    return max(done, key=lambda r: r["value"]) if done else None


def chart(rows: list[dict]) -> dict:
    """Points of an inline SVG: each finished trial's objective (x: trial number), and the running best."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not done:
        return {"points": [], "best": "", "width": CHART_WIDTH, "height": CHART_HEIGHT, "low": 0.0, "high": 0.0}
    low, high = min(r["value"] for r in done), max(r["value"] for r in done)
    span, last = (high - low) or 1.0, max(r["number"] for r in rows) or 1

    def xy(number: int, value: float) -> tuple[float, float]:
        x = CHART_PAD + (CHART_WIDTH - 2 * CHART_PAD) * number / last
        y = CHART_HEIGHT - CHART_PAD - (CHART_HEIGHT - 2 * CHART_PAD) * (value - low) / span
        return round(x, 1), round(y, 1)

    points, best, running = [], [], -1.0
    for r in sorted(done, key=lambda r: r["number"]):
        points.append((*xy(r["number"], r["value"]), r["number"], r["value"]))
        running = max(running, r["value"])
        x, y = xy(r["number"], running)
        best.append(f"{x:.1f},{y:.1f}")
    return {
        "points": points,
        "best": " ".join(best),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "low": low,
        "high": high,
    }


def publish_best(job_id: int, storage_url: str) -> ModelVersion:
    """Activate the best trial's version; refused when no trial finished or its version did not pass the gate."""
    job = db.session.get(Job, job_id)
    if job is None or job.kind != "tune":
        raise InputError(f"no hyperparameter search {job_id}")
    best = best_trial(trials(job, storage_url))
    if best is None:
        raise InputError(f"search {job_id} has no finished trial yet")
    version = db.session.get(ModelVersion, best["version_id"] or 0)
    if version is None or version.status not in ("ready", "retired"):
        status = getattr(version, "status", "missing")
        raise InputError(f"the best trial's version v{best['version_id']} is {status}: it did not pass the gate")
    return activate_version(version.id)
