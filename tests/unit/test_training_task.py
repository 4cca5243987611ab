"""The fine-tune task body with a tiny model: publish, gate, too little feedback, lock, cancel, resume.

Feedback comes from the shopper simulator driving the real API through the test client
(one client per visitor, so each has its own cookie); the parent version is built by
the real build pipeline from the tiny encoder.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

import worker.building.fine_tune as fine_tune_module
import worker.building.version_build as version_build
from engine.evaluation.judgments import ESCI_GAINS, Judgments, Query
from engine.evaluation.simulator import ShopperModel, Simulator
from engine.modeling.config import LossWeights
from engine.modeling.export import export_query_encoder
from engine.serving.bundle import load_bundle
from tests.unit.serving_fixtures import copy_export
from webapp.extensions import db
from webapp.models import Event, Job, ModelVersion, utcnow
from webapp.services.model_versions import create_version
from worker.schedule import maybe_start_fine_tune
from worker.tasks.training import run_fine_tune_job

CATALOG = {
    "S1": "UGG women's fluffette slippers",
    "S2": "women's memory foam house slippers",
    "S3": "men's moccasin slippers",
    "C1": "decorative couch pillows set of 2",
    "C2": "throw pillow covers 18x18",
    "G1": "acoustic guitar for beginners",
    "G2": "guitar strings",
    "K1": "kindle paperwhite e-reader",
    "K2": "kindle case cover",
    "L1": "thin leather watch strap",
    "D1": "red ceramic dog bowl",
    "X1": "garden hose 50 ft",
}
# Validation and test labels: real demo-split texts (train: the first four; test: the last two).
LABELS = {
    "ugg slippers women": {"S1": 100, "S2": 10, "S3": 1, "X1": 0},
    "couch pillows": {"C1": 100, "C2": 10, "X1": 0},
    "guitar": {"G1": 100, "G2": 1, "X1": 0},
    "kindle": {"K1": 100, "K2": 1, "X1": 0},
    "thin leather strap": {"L1": 100, "X1": 0},
    "red dog bowl": {"D1": 100, "X1": 0},
}
# What the simulated shoppers search for: none of it is a validation or test query.
SHOPPING = {
    "house slippers": {"S1": 100, "S2": 100, "S3": 10},
    "throw pillows": {"C1": 100, "C2": 100},
    "guitar strings": {"G2": 100, "G1": 1},
    "e-reader": {"K1": 100, "K2": 1},
    "hose for the garden": {"X1": 100},
}
TRAIN = {
    "method": "full",
    "epochs": 2,
    "batch_size": 8,
    "pairs_per_query": 4,
    "extra_negatives": 2,
    "product_max_length": 32,
    "learning_rate": 1e-3,
    "checkpoint_every": 2,
}


class ClientVisitor:
    """A simulated visitor talking to the real API through its own test client."""

    def __init__(self, app) -> None:
        self.client = app.test_client()

    def search(self, params: dict[str, str]) -> dict:
        response = self.client.get("/api/search", query_string=params)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def send_events(self, events: list[dict]) -> None:
        response = self.client.post("/api/events", json={"events": events})
        assert response.status_code == 201, response.get_data(as_text=True)


@pytest.fixture
def cached_export(monkeypatch):
    monkeypatch.setattr(version_build, "export_query_encoder", lambda enc, tok, out, **_: copy_export(Path(out)))


@pytest.fixture
def parent(app, make_product, tiny_model, monkeypatch, tmp_path, cached_export) -> ModelVersion:
    """Catalog, labels and an active v1 built from the tiny encoder."""
    for external_id, title in CATALOG.items():
        make_product(external_id=external_id, title=title, brand="", category_path=f"Dept > {external_id[0]}")
    qrels = tmp_path / "judgments.json"
    ratings = [
        {"query": q, "ratings": [{"docId": d, "rating": f"{g}.000"} for d, g in docs.items()]}
        for q, docs in LABELS.items()
    ]
    qrels.write_text(json.dumps({"judgmentRatings": ratings}))
    app.config.update(RANKER_QRELS=str(qrels), FINE_TUNE_MIN_NEW_EVENTS=10)
    monkeypatch.setattr(version_build, "load_pretrained", lambda: (tiny_model.encoder, tiny_model.tokenizer))
    version = create_version("zero-shot tiny")
    version_build.build_version(version.id, lambda done, total: None)
    return db.session.get(ModelVersion, version.id)


def shoppers(app, sessions: int = 60, seed: int = 1) -> None:
    queries = [Query(f"s{i}", text) for i, text in enumerate(SHOPPING)]
    judgments = Judgments(grades={f"s{i}": docs for i, docs in enumerate(SHOPPING.values())}, gain_map=ESCI_GAINS)
    Simulator(queries, judgments, ShopperModel(refine_share=0.0)).run(lambda: ClientVisitor(app), sessions, seed)


def fine_tune_job(parent_id: int, **params) -> Job:
    job = Job(kind="fine_tune", status="queued", params={"parent_version_id": parent_id, **params})
    db.session.add(job)
    db.session.commit()
    return job


def params(**overrides) -> dict:
    values = {"train": dict(TRAIN), "min_positive_pairs": 3, "gate_margin": 1.0}
    values.update(overrides)
    return values


def reload_job(job_id: int) -> Job:
    db.session.expire_all()
    return db.session.get(Job, job_id)


def versions() -> list[ModelVersion]:
    db.session.expire_all()
    return db.session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()


def test_a_run_publishes_a_ready_child_with_metrics_and_logs(app, parent, monkeypatch):
    monkeypatch.setattr(version_build, "export_query_encoder", export_query_encoder)  # the real export, once
    shoppers(app)
    job = fine_tune_job(parent.id, **params())
    result = run_fine_tune_job(job.id)
    job = reload_job(job.id)
    assert (job.status, job.progress, job.error) == ("succeeded", 1.0, ""), job.error
    child = db.session.get(ModelVersion, result["version_id"])
    assert (child.status, child.parent_id) == ("ready", parent.id)  # never active by itself
    assert db.session.get(ModelVersion, parent.id).status == "active"
    summary = child.metrics["fine_tune"]
    assert (
        set(summary["before"])
        == set(summary["after"])
        == {f"validation_ndcg10_{m}" for m in ("dense", "rrf", "hybrid")}
    )
    gate = summary["gate"]
    assert gate["passed"] and gate["mode"] == "hybrid" and gate["queries"] == 1 and gate["low"] >= -gate["margin"]
    assert child.metrics["gate"] == gate
    assert summary["training"]["steps"] > 0 and summary["training"]["data"]["positive_pairs"] >= 3
    assert summary["training"]["data"].get("held_out_searches", 0) == 0  # the shoppers never searched a labelled query
    assert not any("test" in key for key in child.metrics)  # the test half is never read while choosing
    logs = job.result["logs"]
    assert not any("test" in line for line in logs if "NDCG" in line or "ndcg" in line)
    assert any("before (v1)" in line for line in logs) and any(f"after (v{child.id})" in line for line in logs)
    assert load_bundle(child.artifact_path, child.id).vectors.dim == 32
    # The heads learned from the shoppers' clicks and carts: the child serves them, the zero-shot parent none.
    assert summary["heads"] == ["click", "purchase"]
    assert load_bundle(child.artifact_path, child.id).heads.names == ("click", "purchase")
    assert load_bundle(parent.artifact_path, parent.id).heads is None
    assert not (Path(app.config["INSTANCE_DIR"]) / "checkpoints" / f"fine_tune-job{job.id}").exists()
    assert run_fine_tune_job(job.id) is None  # a redelivery of finished work does nothing


def test_the_gate_refuses_a_worse_model(app, parent, monkeypatch):
    shoppers(app)
    real = fine_tune_module.validation_scores
    calls = []

    def worse_after(searcher, labels):
        measured = real(searcher, labels)
        calls.append(measured)
        if len(calls) == 1:
            return measured
        return {mode: {q: v - 0.2 for q, v in scores.items()} for mode, scores in calls[0].items()}

    monkeypatch.setattr(fine_tune_module, "validation_scores", worse_after)
    job = fine_tune_job(parent.id, **params(gate_margin=0.01))
    result = run_fine_tune_job(job.id)
    job = reload_job(job.id)
    refusal = job.result["refused"]
    assert job.status == "refused" and "gate: validation NDCG@10 (hybrid)" in refusal, "\n".join(job.result["logs"])
    assert "interval [-0.2000, -0.2000] over 1 queries, margin 0.01" in refusal
    assert result == {"refused": refusal} and refusal in job.result["logs"][-1] and job.error == ""
    child = versions()[-1]
    assert child.id != parent.id and child.status == "failed" and "gate" in child.metrics["error"]
    assert not Path(child.artifact_path).exists()  # nothing half-published
    assert child.metrics["before"] and child.metrics["after"]
    assert child.metrics["gate"]["passed"] is False and child.metrics["gate"]["difference"] == -0.2


def test_too_little_feedback_ends_with_a_clear_message(app, parent):
    job = fine_tune_job(parent.id, **params(min_positive_pairs=5))
    run_fine_tune_job(job.id)
    job = reload_job(job.id)
    # A refusal is no failure: its own state, the reason once (as the message), and what would let it run.
    assert job.status == "refused" and job.error == ""
    assert job.message.startswith("too little feedback: 0 positive (query, product) pairs from 0 searches")
    assert job.result["refused"] == job.message
    assert "needs 5 positive (query, product) pairs" in job.result["next_step"]
    assert "flask --app webapp simulate --base-url" in job.result["next_step"]
    assert run_fine_tune_job(job.id) is None  # a redelivery of a refused job does not run it again
    assert len(versions()) == 1


def test_one_run_at_a_time(app, parent):
    busy = fine_tune_job(parent.id)
    busy.status, busy.result = "running", {"heartbeat": utcnow().isoformat()}
    db.session.commit()
    job = fine_tune_job(parent.id, **params())
    assert run_fine_tune_job(job.id) == {
        "refused": f"another fine-tune (job {busy.id}) is running; only one runs at a time",
        "next_step": f"Wait for job {busy.id} to finish, then retrain again if it did not publish.",
    }
    assert reload_job(job.id).status == "refused"
    # A live duplicate of the running job itself leaves it alone.
    assert run_fine_tune_job(busy.id) is None and reload_job(busy.id).status == "running"
    # A run whose heartbeat stopped (its worker died) no longer holds the lock.
    stale = (utcnow() - timedelta(seconds=app.config["FINE_TUNE_LOCK_TTL_SECONDS"] + 5)).isoformat()
    db.session.execute(update(Job).where(Job.id == busy.id).values(result={"heartbeat": stale}))
    db.session.commit()
    other = fine_tune_job(parent.id, **params(min_positive_pairs=10**6))
    run_fine_tune_job(other.id)
    assert "too little feedback" in reload_job(other.id).message  # it got past the lock


def test_an_admin_cancel_stops_training_cleanly(app, parent, monkeypatch):
    shoppers(app)
    job = fine_tune_job(parent.id, **params())
    real = fine_tune_module.fine_tune

    def cancel_then_train(*args, **kwargs):
        db.session.execute(update(Job).where(Job.id == job.id).values(status="cancelled"))
        db.session.commit()
        return real(*args, **kwargs)

    monkeypatch.setattr(fine_tune_module, "fine_tune", cancel_then_train)
    result = run_fine_tune_job(job.id)
    job = reload_job(job.id)
    assert result["cancelled"] and job.status == "cancelled" and job.finished_at is not None
    assert result["training"]["stopped"] == "cancelled" and len(versions()) == 1


def test_a_crashed_run_resumes_from_its_checkpoint(app, parent, monkeypatch):
    shoppers(app)
    job = fine_tune_job(parent.id, **params())
    real = fine_tune_module.fine_tune

    def crash_at_step_3(*args, **kwargs):
        report = kwargs["progress"]

        def progress(done, total):
            report(done, total)
            if done == 3:
                raise RuntimeError("worker lost")

        return real(*args, **{**kwargs, "progress": progress})

    monkeypatch.setattr(fine_tune_module, "fine_tune", crash_at_step_3)
    with pytest.raises(RuntimeError, match="worker lost"):
        run_fine_tune_job(job.id)
    assert reload_job(job.id).status == "failed" and len(versions()) == 1
    monkeypatch.setattr(fine_tune_module, "fine_tune", real)
    result = run_fine_tune_job(job.id)  # a retry of the same job
    assert reload_job(job.id).status == "succeeded"
    assert result["training"]["resumed_from"] == 2  # the checkpoint before the crash
    assert [v.status for v in versions()] == ["active", "ready"]


def test_the_schedule_starts_a_run_only_with_enough_new_feedback(app, parent, monkeypatch):
    sent = []
    monkeypatch.setattr(
        app.extensions["celery"], "send_task", lambda name, args, **_options: sent.append((name, args)) or _Id()
    )
    assert maybe_start_fine_tune() == {"started": False, "reason": "0 new feedback events, 10 needed"}
    shoppers(app, sessions=20)
    decision = maybe_start_fine_tune()
    assert decision["started"] and sent == [("training.fine_tune", [decision["job_id"]])]
    job = db.session.get(Job, decision["job_id"])
    assert (job.kind, job.params) == ("fine_tune", {"parent_version_id": parent.id, "trigger": "schedule"})
    assert maybe_start_fine_tune()["reason"] == f"fine-tune job {job.id} is queued or running"
    job.status, job.finished_at = "succeeded", utcnow()
    db.session.commit()
    assert "0 new feedback events" in maybe_start_fine_tune()["reason"]  # counted from the last success
    assert db.session.scalar(select(func.count(Event.id))) >= 10


class _Id:
    id = "task-id"


def test_heads_count_as_learned_only_with_labels_and_a_weight():
    steps = [{"step": 1, "total": 0.9, "relevance": 0.5}, {"step": 2, "total": 0.8, "relevance": 0.4, "click": 0.6}]
    learned = fine_tune_module.learned_heads
    assert learned(steps, LossWeights(), ()) == ("click",)  # no step saw a purchase label
    assert learned(steps, LossWeights(click=0.0), ()) == ()  # a logged loss with weight 0 trained nothing
    assert learned(steps, LossWeights(), ["purchase"]) == ("click", "purchase")  # the parent's stay learned
    assert learned([], LossWeights(), ()) == ()
