"""The hyperparameter search's admin page and CLI (webapp.admin.tuning, webapp.services.tuning,
`flask model tune`): trials read from Optuna's storage, a chart, the best trial published."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import create_trial

from tests.unit.test_admin_models import loadable_version, send_task  # noqa: F401  (fixture)
from webapp.extensions import db
from webapp.models import Job, ModelVersion
from webapp.services.model_versions import activate_version
from worker.building.tune import storage_url

DISTRIBUTIONS = {
    "method": CategoricalDistribution(["full", "top_layers"]),
    "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
}


@pytest.fixture
def search(app, tiny_model) -> tuple[Job, list[ModelVersion]]:
    """A finished search of three trials: the best one's version passed the gate, the others too."""
    parent = loadable_version("zero-shot")
    activate_version(parent.id)
    children = [loadable_version(f"trial {n}") for n in range(3)]
    job = Job(kind="tune", status="succeeded", params={"parent_version_id": parent.id, "trials": 3})
    db.session.add(job)
    db.session.commit()
    storage = storage_url()  # as the tune job opens it (its schema made on PostgreSQL)
    try:  # PostgreSQL keeps the optuna schema across tests while job ids start again at 1
        optuna.delete_study(study_name=f"kairos-tune-job{job.id}", storage=storage)
    except KeyError:
        pass
    study = optuna.create_study(study_name=f"kairos-tune-job{job.id}", storage=storage, direction="maximize")
    for n, (value, method) in enumerate([(0.61, "full"), (0.6512, "top_layers"), (0.63, "full")]):
        study.add_trial(
            create_trial(
                value=value,
                params={"method": method, "learning_rate": 3e-5},
                distributions=DISTRIBUTIONS,
                user_attrs={"version_id": children[n].id, "gate": "passed"},
            )
        )
    return job, children


def test_the_page_shows_trials_a_chart_and_the_best(client, login, search):
    job, children = search
    login("analyst")
    page = client.get("/admin/models/tune").get_data(as_text=True)
    assert f"job {job.id}" in page and "<svg" in page and page.count("<circle") == 3
    assert "0.6512" in page and f"v{children[1].id}" in page and "method=top_layers" in page
    assert "Best: trial 1" in page and "Publish best trial" not in page  # an analyst only looks
    assert "Hyperparameter search" in client.get("/admin/models").get_data(as_text=True)


def test_publishing_serves_the_best_trials_version(client, login, search):
    job, children = search
    login("admin")
    response = client.post(f"/admin/models/tune/{job.id}/publish", follow_redirects=True)
    assert f"Version {children[1].id}, the best trial" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ModelVersion, children[1].id).status == "active"


def test_a_best_trial_refused_by_the_gate_is_not_published(client, login, search):
    job, children = search
    children[1].status = "failed"
    db.session.commit()
    login("admin")
    page = client.post(f"/admin/models/tune/{job.id}/publish", follow_redirects=True).get_data(as_text=True)
    assert "did not pass the gate" in page
    db.session.expire_all()
    assert db.session.get(ModelVersion, children[1].id).status == "failed"


def test_start_from_the_page_and_the_cli(app, client, login, runner, send_task, tiny_model):  # noqa: F811
    login("admin")
    response = client.post("/admin/models/tune", data={"trials": "3", "timeout": "60"}, follow_redirects=True)
    assert "no model version is active" in response.get_data(as_text=True)
    activate_version(loadable_version("zero-shot").id)
    client.post("/admin/models/tune", data={"trials": "3", "timeout": "60"})
    [job] = db.session.scalars(db.select(Job).where(Job.kind == "tune")).all()
    assert job.params["trials"] == 3 and job.params["timeout"] == 60.0
    assert send_task.call_args.args[0] == "training.tune"
    result = runner.invoke(args=["model", "tune", "--trials", "2", "--timeout", "30"])
    assert result.exit_code == 1 and "a hyperparameter search is already queued" in result.output
    job.status = "failed"
    db.session.commit()
    result = runner.invoke(args=["model", "tune", "--trials", "2", "--timeout", "30"])
    assert result.exit_code == 0 and "search of 2 trials queued as job" in result.output, result.output
    assert runner.invoke(args=["model", "tune", "--trials", "0"]).exit_code == 2
