"""Experiment use cases (webapp.services.experiments, experiment_snapshots): validation, lifecycle,
one running at a time, promote, snapshots and their beat task."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select, update

from engine.serving.searcher import SearchRequest
from tests.unit.serving_fixtures import build_version_dir, card
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Event, Experiment, ExperimentSnapshot, ModelVersion
from webapp.services.assignment import running_experiment
from webapp.services.experiment_snapshots import snapshot_running, take_snapshot
from webapp.services.experiments import (
    VariantSpec,
    create_experiment,
    pause_experiment,
    promote_winner,
    resume_experiment,
    start_experiment,
    stop_experiment,
    variants_of,
)
from webapp.services.model_versions import active_version, create_version
from webapp.services.search import search_and_log
from worker.schedule import beat_schedule


@pytest.fixture(autouse=True)
def _clear_winners(app):
    """The fixture's drop_all cannot untie experiments.winner_variant_id on SQLite (no ALTER): untie it here."""
    yield
    db.session.rollback()
    db.session.execute(update(Experiment).values(winner_variant_id=None))
    db.session.commit()


def lexical_pair(shares=(0.5, 0.5)) -> list[VariantSpec]:
    return [
        VariantSpec("control", shares[0], None, None, is_control=True),
        VariantSpec("treatment", shares[1], None, "lexical"),
    ]


def version(status: str = "ready", mode: str = "hybrid") -> ModelVersion:
    row = ModelVersion(name=f"{status} {mode}", status=status, retrieval_mode=mode)
    db.session.add(row)
    db.session.commit()
    return row


def loadable(name: str) -> ModelVersion:
    row = create_version(name)
    build_version_dir(row.artifact_path, [card(1, "red running shoes"), card(2, "blue rain jacket")])
    row.status = "ready"
    db.session.commit()
    return row


def fresh(experiment_id: int) -> Experiment:
    db.session.expire_all()
    return db.session.get(Experiment, experiment_id)


def test_create_records_a_draft_with_its_variants(app):
    v = version("ready")
    experiment = create_experiment(
        " Ranker test ",
        [
            VariantSpec("control", 0.25, None, None, is_control=True),
            VariantSpec("dense", 0.25, v.id, "dense"),
            VariantSpec("own mode", 0.5, v.id, None),
        ],
        description="compare",
        primary_metric="purchase_rate",
        alpha=0.01,
        sequential=False,
    )
    experiment = fresh(experiment.id)
    assert (experiment.name, experiment.status, experiment.primary_metric, experiment.alpha) == (
        "Ranker test",
        "draft",
        "purchase_rate",
        0.01,
    )
    assert not experiment.sequential and len(experiment.salt) == 16 and experiment.started_at is None
    rows = variants_of(experiment.id)
    assert [(r.name, r.is_control, r.traffic_share, r.model_version_id, r.ranking_config) for r in rows] == [
        ("control", True, 0.25, None, {}),
        ("dense", False, 0.25, v.id, {"retrieval_mode": "dense"}),
        ("own mode", False, 0.5, v.id, {}),
    ]
    other = create_experiment("again", lexical_pair())
    assert other.salt != experiment.salt  # independent assignments across experiments


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        (lambda v: lexical_pair((0.5, 0.4)), "must sum to 100%"),
        (lambda v: lexical_pair((0.5, 0.5 + 2e-6)), "must sum to 100%"),
        (lambda v: lexical_pair((1.0, 0.0)), "above 0"),
        (lambda v: lexical_pair((1.2, -0.2)), "above 0"),
        (lambda v: [VariantSpec("only", 1.0, None, None, True)], "2 to 10 variants"),
        (lambda v: [VariantSpec("a", 0.5, None, None, True), VariantSpec("b", 0.5, None, None, True)], "one variant"),
        (lambda v: [VariantSpec("a", 0.5, None, None), VariantSpec("b", 0.5, None, None)], "one variant"),
        (lambda v: [VariantSpec("Same", 0.5, None, None, True), VariantSpec("same ", 0.5, None, None)], "unique"),
        (lambda v: [VariantSpec(" ", 0.5, None, None, True), VariantSpec("b", 0.5, None, None)], "name"),
        (lambda v: [VariantSpec("a", 0.5, None, None, True), VariantSpec("b", 0.5, 999, None)], "no model version"),
        (lambda v: [VariantSpec("a", 0.5, None, None, True), VariantSpec("b", 0.5, v["failed"], None)], "failed"),
        (lambda v: [VariantSpec("a", 0.5, None, None, True), VariantSpec("b", 0.5, v["building"], None)], "building"),
        (lambda v: [VariantSpec("a", 0.5, None, None, True), VariantSpec("b", 0.5, None, "dense")], "needs a model"),
        (lambda v: [VariantSpec("a", 0.5, None, None, True), VariantSpec("b", 0.5, v["ready"], "magic")], "unknown"),
    ],
)
def test_invalid_experiments_are_refused(app, variants, message):
    ids = {status: version(status).id for status in ("ready", "failed", "building")}
    with pytest.raises(InputError, match=message):
        create_experiment("x", variants(ids))
    assert db.session.scalars(select(Experiment)).all() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name"),
        ({"primary_metric": "happiness"}, "unknown metric"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 0.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
    ],
)
def test_invalid_settings_are_refused(app, fields, message):
    args = {"name": "x", "variants": lexical_pair(), **fields}
    with pytest.raises(InputError, match=message):
        create_experiment(**args)


def test_lifecycle(app):
    experiment = create_experiment("life", lexical_pair())
    with pytest.raises(InputError, match="draft"):
        pause_experiment(experiment.id)
    with pytest.raises(InputError, match="only a paused one"):
        resume_experiment(experiment.id)
    start_experiment(experiment.id)
    started = fresh(experiment.id).started_at
    assert fresh(experiment.id).status == "running" and started is not None
    assert running_experiment().id == experiment.id  # this process sees it at once
    with pytest.raises(InputError, match="only a draft one"):
        start_experiment(experiment.id)
    pause_experiment(experiment.id)
    assert fresh(experiment.id).status == "paused" and running_experiment() is None
    resume_experiment(experiment.id)
    assert fresh(experiment.id).status == "running" and fresh(experiment.id).started_at == started
    stop_experiment(experiment.id)
    stopped = fresh(experiment.id)
    assert stopped.status == "stopped" and stopped.stopped_at is not None and running_experiment() is None
    for action in (start_experiment, resume_experiment, pause_experiment, stop_experiment):
        with pytest.raises(InputError):
            action(experiment.id)
    with pytest.raises(InputError, match="no experiment 999"):
        start_experiment(999)


def test_a_draft_can_be_abandoned(app):
    experiment = create_experiment("never", lexical_pair())
    stop_experiment(experiment.id)
    assert fresh(experiment.id).status == "stopped" and fresh(experiment.id).started_at is None


def test_only_one_experiment_runs_at_a_time(app):
    first = create_experiment("first", lexical_pair())
    second = create_experiment("second", lexical_pair())
    start_experiment(first.id)
    with pytest.raises(InputError, match="only one experiment runs at a time"):
        start_experiment(second.id)
    assert fresh(second.id).status == "draft"
    pause_experiment(first.id)
    start_experiment(second.id)
    with pytest.raises(InputError, match="only one experiment runs at a time"):
        resume_experiment(first.id)
    assert [e.status for e in (fresh(first.id), fresh(second.id))] == ["paused", "running"]


def test_start_refuses_a_version_that_failed_since(app):
    v = version("ready")
    experiment = create_experiment("x", [*lexical_pair((0.5, 0.25))[:1], VariantSpec("m", 0.5, v.id, None)])
    v.status = "failed"
    db.session.commit()
    with pytest.raises(InputError, match="failed"):
        start_experiment(experiment.id)
    assert fresh(experiment.id).status == "draft"


def test_promote_activates_the_winner_in_its_mode(app, tiny_model):
    current, challenger = loadable("current"), loadable("challenger")
    current.status = "active"
    db.session.commit()
    experiment = create_experiment(
        "promote",
        [VariantSpec("control", 0.5, current.id, None, True), VariantSpec("dense", 0.5, challenger.id, "dense")],
    )
    with pytest.raises(InputError, match="draft"):
        promote_winner(experiment.id, variants_of(experiment.id)[1].id)
    start_experiment(experiment.id)
    winner = variants_of(experiment.id)[1]
    promote_winner(experiment.id, winner.id)
    db.session.expire_all()
    assert active_version().id == challenger.id and active_version().retrieval_mode == "dense"
    assert db.session.get(ModelVersion, current.id).status == "retired"
    done = fresh(experiment.id)
    assert (done.status, done.winner_variant_id) == ("stopped", winner.id) and done.stopped_at is not None
    assert running_experiment() is None
    with pytest.raises(InputError, match="nothing to promote"):
        promote_winner(experiment.id, winner.id)


def test_promoting_a_lexical_winner_retires_the_active_version(app):
    v = version("active")
    experiment = create_experiment(
        "lexical wins", [VariantSpec("model", 0.5, v.id, None, True), VariantSpec("words", 0.5, None, "lexical")]
    )
    start_experiment(experiment.id)
    pause_experiment(experiment.id)  # a paused experiment can be decided too
    promote_winner(experiment.id, variants_of(experiment.id)[1].id)
    db.session.expire_all()
    assert active_version() is None and db.session.get(ModelVersion, v.id).status == "retired"


def test_a_failed_promotion_changes_nothing(app, tiny_model):
    broken = loadable("broken")
    experiment = create_experiment(
        "x", [VariantSpec("control", 0.5, None, None, True), VariantSpec("model", 0.5, broken.id, None)]
    )
    start_experiment(experiment.id)
    shutil.rmtree(broken.artifact_path)  # the artifacts went missing after the experiment started
    with pytest.raises(InputError, match="cannot serve"):
        promote_winner(experiment.id, variants_of(experiment.id)[1].id)
    still = fresh(experiment.id)
    assert (still.status, still.winner_variant_id, still.stopped_at) == ("running", None, None)
    assert db.session.get(ModelVersion, broken.id).status == "ready"
    other = create_experiment("other", lexical_pair())
    with pytest.raises(InputError, match="not part of"):
        promote_winner(experiment.id, variants_of(other.id)[0].id)


def test_snapshots_store_the_report_for_charts(app, make_product):
    product = make_product(title="wool socks")
    experiment = create_experiment("snap", lexical_pair())
    idle = create_experiment("idle", lexical_pair())
    start_experiment(experiment.id)
    for n in range(6):
        query, response = search_and_log(SearchRequest(text="socks"), f"visitor-{n}")
        if n % 2 == 0:
            db.session.add(Event(type="click", visitor_id=f"visitor-{n}", product_id=product.id, search_id=query.id))
            db.session.commit()
    ids = snapshot_running()
    assert len(ids) == 1
    snapshot = db.session.get(ExperimentSnapshot, ids[0])
    assert snapshot.experiment_id == experiment.id and snapshot.taken_at is not None
    data = snapshot.data
    assert data["primary_metric"] == "click_through_rate" and data["format"] == 1
    variants = data["variants"]
    assert sum(v["visitors"] for v in variants.values()) == 6
    assert sum(v["moments"]["click_through_rate"]["sy"] for v in variants.values()) == 3  # three clicks
    assert sum(v["metrics"]["click_through_rate"]["denominator"] for v in variants.values()) == 6
    (treatment,) = data["treatments"].values()
    assert treatment["verdict"]["outcome"] == "not_enough_data" and "click_through_rate" in treatment["comparisons"]
    assert take_snapshot(idle.id).data["variants"]  # an experiment without visitors snapshots as zeros
    with pytest.raises(InputError):
        take_snapshot(999)


def test_the_snapshot_task_and_its_beat_entry(app):
    import worker.tasks  # noqa: F401  (registers the tasks, as worker/celery_app.py does)
    from worker.tasks.experiments import snapshot_running as task

    entry = beat_schedule(app.config)["kairos-experiment-snapshots"]
    assert entry["task"] == task.name == "experiments.snapshot_running" and entry["schedule"] == 3600.0
    experiment = create_experiment("beat", lexical_pair())
    start_experiment(experiment.id)
    result = task()  # the task body, in an app context, without a broker
    assert result == {"snapshots": [s.id for s in db.session.scalars(select(ExperimentSnapshot))]}
    assert len(result["snapshots"]) == 1
