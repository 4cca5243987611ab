"""The hyperparameter search job (worker.tasks.tuning, worker.building.tune) on the tiny model:
two trials persisted in Optuna's RDB storage, a killed worker's study resumed, and the test
half's judgments never needed (they are removed before it runs)."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

import worker.building.tune as tune_module
from tests.unit.test_training_task import (  # noqa: F401  (fixtures)
    LABELS,
    TRAIN,
    cached_export,
    parent,
    reload_job,
    shoppers,
)
from webapp.extensions import db
from webapp.models import Job, ModelVersion
from worker.building.tune import study_name
from worker.tasks.tuning import run_tune_job

TEST_HALF = {"thin leather strap", "red dog bowl"}
SPACE = {"method": ["full"], "max_steps": [2, 4], "pairs_per_query": [2, 4], "extra_negatives": [1, 2]}


class Killed(BaseException):
    """What a SIGKILL looks like from inside: the study's code never gets to record anything."""


@pytest.fixture
def train_judgments_only(app, parent, tmp_path):  # noqa: F811
    """The judgments file without the test half: whatever the search reads, it cannot be those."""
    path = tmp_path / "train-only.json"
    ratings = [
        {"query": q, "ratings": [{"docId": d, "rating": f"{g}.000"} for d, g in docs.items()]}
        for q, docs in LABELS.items()
        if q not in TEST_HALF
    ]
    path.write_text(json.dumps({"judgmentRatings": ratings}))
    app.config.update(RANKER_QRELS=str(path), TUNE_STORAGE_URL=f"sqlite:///{tmp_path / 'optuna.db'}")
    return path


def tune_job(parent_id: int, trials: int) -> Job:
    train = {k: v for k, v in TRAIN.items() if k not in ("pairs_per_query", "extra_negatives")}
    params = {
        "parent_version_id": parent_id,
        "trials": trials,
        "timeout": 600,
        "space": SPACE,
        "train": train,
        "min_positive_pairs": 3,
        "gate_margin": 1.0,
    }
    job = Job(kind="tune", status="queued", params=params)
    db.session.add(job)
    db.session.commit()
    return job


def stored_trials(app, job_id: int) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(app.config["TUNE_STORAGE_URL"])
    return optuna.load_study(study_name=study_name(job_id), storage=storage).get_trials()


def test_two_trials_run_persist_and_score_on_validation_only(app, parent, train_judgments_only):  # noqa: F811
    shoppers(app)
    job = tune_job(parent.id, trials=2)
    result = run_tune_job(job.id)
    job = reload_job(job.id)
    assert job.status == "succeeded", job.error
    trials = stored_trials(app, job.id)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # in the database, not in memory
    assert all(0.0 <= t.value <= 1.0 and t.params["method"] == "full" for t in trials)
    for trial in trials:
        version = db.session.get(ModelVersion, trial.user_attrs["version_id"])
        assert version.status == "ready" and version.parent_id == parent.id
        assert trial.value == version.metrics["fine_tune"]["after"]["validation_ndcg10_hybrid"]
        assert not any("test" in key for key in version.metrics["fine_tune"]["after"])
    assert [r["number"] for r in job.result["trials"]] == [0, 1] and result["best"]["value"] == max(
        t.value for t in trials
    )
    assert job.message.startswith("best trial")


def test_a_killed_study_resumes_where_it_stopped(app, parent, train_judgments_only, monkeypatch):  # noqa: F811
    shoppers(app)
    real, calls = tune_module.run_fine_tune, []

    def dies_on_the_second_trial(*args, **kwargs):
        calls.append(kwargs["run_key"])
        if len(calls) == 2:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(tune_module, "run_fine_tune", dies_on_the_second_trial)
    job = tune_job(parent.id, trials=2)
    with pytest.raises(Killed):
        run_tune_job(job.id)
    assert reload_job(job.id).status == "running"  # nobody was left to say otherwise
    assert [t.state for t in stored_trials(app, job.id)] == [TrialState.COMPLETE, TrialState.RUNNING]

    run_tune_job(job.id)  # the message redelivered to a new worker
    job = reload_job(job.id)
    assert job.status == "succeeded", job.error
    trials = stored_trials(app, job.id)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].params == trials[1].params and calls[2] == calls[1]  # the killed trial's settings, again
    assert any("1 interrupted trial(s) queued again" in line for line in job.result["logs"])
    assert run_tune_job(job.id) is None  # finished work is not redone
