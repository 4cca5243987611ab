"""Hyperparameter search over fine-tuning settings: an Optuna study (TPE), one fine-tune per trial.

Each trial runs the normal fine-tune (worker.building.fine_tune.run_fine_tune) with the
trial's settings and a time budget: it builds a child version through the normal gate (a
paired bootstrap against the parent on validation), so a trial's version is 'ready' only
when it passed. The trial's value is the child's validation NDCG@10 of what it serves; the
test half is never read. The study lives in Optuna's RDB storage (TUNE_STORAGE_URL): a trial
left running by a killed worker is marked failed and its settings queued again, and a trial
is keyed by its settings, so the re-run finds that trial's checkpoint and version and
resumes them; a re-run of the job continues the study up to its number of trials.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import optuna
from flask import current_app
from optuna.trial import TrialState
from sqlalchemy import text

from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.tuning import study_name, trial_rows
from worker.building.fine_tune import FineTuneRefused, Hooks, run_fine_tune

OBJECTIVE = "validation_ndcg10_hybrid"
# The searched settings and their default ranges; a job's params["space"] may narrow them.
SPACE = {
    "method": ["top_layers", "full", "lora"],
    "learning_rate": [1e-5, 3e-4],
    "max_steps": [20, 200],
    "pairs_per_query": [2, 16],
    "extra_negatives": [0, 32],
    "click": [0.0, 1.0],
    "purchase": [0.0, 1.0],
}


@dataclass(frozen=True)
class TuneSettings:
    trials: int
    timeout: float  # seconds for the whole study run (Optuna stops starting trials after it)
    trial_seconds: float  # training budget of each trial
    seed: int
    space: dict

    @classmethod
    def from_params(cls, params: Mapping) -> TuneSettings:
        space = {**SPACE, **params.get("space", {})}
        unknown = set(space) - set(SPACE)
        if unknown:
            raise ValueError(f"unknown search settings: {', '.join(sorted(unknown))}")
        trials, timeout = int(params.get("trials", 10)), float(params.get("timeout", 4 * 3600))
        if trials < 1 or timeout <= 0:
            raise ValueError("trials must be at least 1 and timeout positive")
        return cls(trials, timeout, float(params.get("trial_seconds", 900)), int(params.get("seed", 0)), space)


def storage_url() -> str:
    """Optuna's storage (TUNE_STORAGE_URL, see webapp.config), its schema created on PostgreSQL.

    Optuna keeps its own `alembic_version` table, so it cannot share the shop's schema: on
    PostgreSQL its tables live in the same database under the schema `optuna`; on SQLite, in
    optuna.db beside the shop's file.
    """
    url = current_app.config["TUNE_STORAGE_URL"]
    if url.startswith("postgresql") and "search_path%3Doptuna" in url:
        db.session.execute(text("CREATE SCHEMA IF NOT EXISTS optuna"))
        db.session.commit()
    return url


def open_study(job_id: int, seed: int) -> optuna.Study:
    """The job's study, created on the first run and loaded on a re-run (TPE, maximise validation NDCG@10)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name(job_id),
        storage=optuna.storages.RDBStorage(storage_url()),
        sampler=optuna.samplers.TPESampler(seed=seed),
        direction="maximize",
        load_if_exists=True,
    )


def requeue_interrupted(study: optuna.Study) -> int:
    """Trials a killed worker left running: failed, and their settings queued to run again first."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
    return len(stale)


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """The trial's fine-tune settings from the search space."""
    lo, hi = space["learning_rate"]
    return {
        "method": trial.suggest_categorical("method", list(space["method"])),
        "learning_rate": trial.suggest_float("learning_rate", lo, hi, log=True),
        "max_steps": trial.suggest_int("max_steps", *space["max_steps"]),
        "pairs_per_query": trial.suggest_int("pairs_per_query", *space["pairs_per_query"]),
        "extra_negatives": trial.suggest_int("extra_negatives", *space["extra_negatives"]),
        "loss": {
            "click": trial.suggest_float("click", *space["click"]),
            "purchase": trial.suggest_float("purchase", *space["purchase"]),
        },
    }


def trial_key(settings: dict) -> str:
    """A trial's identity from its settings: a re-run of the same settings resumes its checkpoint."""
    return "trial-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _keyed(hooks: Hooks, key: str) -> Hooks:
    """The job's hooks with remembered values kept per trial."""
    return Hooks(
        hooks.log,
        lambda done, total: None,
        hooks.should_stop,
        lambda name, value: hooks.remember(f"{key}:{name}", value),
        lambda name: hooks.recall(f"{key}:{name}"),
    )


def run_tune(job_id: int, created_at: datetime, params: Mapping, hooks: Hooks) -> dict:
    """Run (or resume) the job's study until it holds `trials` finished trials or the timeout passes."""
    settings = TuneSettings.from_params(params)
    study = open_study(job_id, settings.seed)
    requeued = requeue_interrupted(study)
    if requeued:
        hooks.log(f"resuming study {study.study_name}: {requeued} interrupted trial(s) queued again")
    base = {k: v for k, v in params.items() if k not in ("trials", "timeout", "trial_seconds", "seed", "space")}

    def objective(trial: optuna.Trial) -> float:
        train = {**base.get("train", {}), **suggest(trial, settings.space), "max_seconds": settings.trial_seconds}
        key = trial_key(train)
        hooks.log(f"trial {trial.number} ({key}): {json.dumps(train, sort_keys=True)}")
        keyed = _keyed(hooks, key)
        try:
            result = run_fine_tune(job_id, created_at, {**base, "train": train}, keyed, run_key=key)
            if result.get("cancelled"):
                trial.set_user_attr("gate", "cancelled")
                study.stop()
                raise optuna.TrialPruned("cancelled by an admin")
            trial.set_user_attr("gate", "passed")
        except FineTuneRefused as exc:
            version = db.session.get(ModelVersion, keyed.recall("version_id") or 0)
            if version is None or OBJECTIVE not in (version.metrics or {}).get("after", {}):
                raise  # nothing was judged (too little feedback, no labels): the study cannot go on
            result = {"version_id": version.id, "after": version.metrics["after"]}
            trial.set_user_attr("gate", str(exc)[:300])
        trial.set_user_attr("version_id", result.get("version_id"))
        value = float(result["after"][OBJECTIVE])
        hooks.log(f"trial {trial.number}: validation NDCG@10 {value:.4f} (v{result.get('version_id')})")
        return value

    def finished() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    remaining = settings.trials - finished()
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=settings.timeout,
            catch=(),
            callbacks=[lambda s, t: hooks.progress(finished(), settings.trials)],
        )
    rows = trial_rows(study)
    complete = [r for r in rows if r["state"] == "complete"]
    best = max(complete, key=lambda r: r["value"]) if complete else None
    return {"study": study.study_name, "trials": rows, "best": best}
