"""A real Celery worker on Redis fine-tunes a tiny model version; SIGKILL mid-run leaves no half
version, and a re-run of the job resumes from its last checkpoint. The Redis lock lets one
run in at a time and frees itself when its holder dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import worker.building.version_build as version_build
from engine.evaluation.judgments import ESCI_GAINS, Judgments, Query
from engine.evaluation.simulator import ShopperModel, Simulator
from tests.integration import processes
from tests.integration.conftest import BROKER, wait_for_job
from tests.unit.serving_fixtures import copy_export, tiny_model
from webapp.extensions import db
from webapp.models import Job, ModelVersion
from webapp.services.jobs import start_job
from webapp.services.model_versions import create_version
from worker.schedule import RedisLock

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATALOG = {
    "S1": "UGG women's fluffette slippers",
    "S2": "women's memory foam house slippers",
    "C1": "decorative couch pillows set of 2",
    "C2": "throw pillow covers 18x18",
    "G1": "acoustic guitar for beginners",
    "G2": "guitar strings",
    "K1": "kindle paperwhite e-reader",
    "X1": "garden hose 50 ft",
}
LABELS = {  # demo-split texts: the first three are train (validation comes from them), the last test
    "ugg slippers women": {"S1": 100, "S2": 10, "X1": 0},
    "couch pillows": {"C1": 100, "C2": 10, "X1": 0},
    "guitar": {"G1": 100, "G2": 1, "X1": 0},
    "red dog bowl": {"X1": 0, "K1": 0},
}
SHOPPING = {"house slippers": {"S1": 100, "S2": 100}, "throw pillows": {"C1": 100, "C2": 100}, "e-reader": {"K1": 100}}
TRAIN = {
    "method": "full",
    "epochs": 40,
    "batch_size": 4,
    "pairs_per_query": 2,
    "extra_negatives": 1,
    "product_max_length": 32,
    "checkpoint_every": 5,
}


@pytest.fixture
def worker_env(tmp_path) -> dict:
    qrels = tmp_path / "judgments.json"
    ratings = [
        {"query": q, "ratings": [{"docId": d, "rating": f"{g}.000"} for d, g in r.items()]} for q, r in LABELS.items()
    ]
    qrels.write_text(json.dumps({"judgmentRatings": ratings}))
    # A dead worker's lock must lapse within the test; production keeps it for minutes.
    return {"KAIROS_RANKER_QRELS": str(qrels), "KAIROS_FINE_TUNE_LOCK_TTL": "3"}


class ClientVisitor:
    def __init__(self, app) -> None:
        self.client = app.test_client()

    def search(self, params: dict[str, str]) -> dict:
        return self.client.get("/api/search", query_string=params).get_json()

    def send_events(self, events: list[dict]) -> None:
        assert self.client.post("/api/events", json={"events": events}).status_code == 201


def start_worker(tmp_path: Path, env: dict, name: str) -> subprocess.Popen:
    """A training-queue worker with its own node name and log (the shared launcher)."""
    return processes.start_worker(env, tmp_path / f"{name}.log", queues="training", name=name)


def test_a_killed_worker_leaves_no_half_version_and_the_rerun_resumes(
    worker_app, worker, worker_env, tmp_path, database_url, monkeypatch
):
    tiny = tiny_model()
    for external_id, title in CATALOG.items():
        from webapp.models import Product

        db.session.add(
            Product(external_id=external_id, title=title, brand="", category_path=f"Dept > {external_id[0]}")
        )
    db.session.commit()
    worker_app.config["RANKER_QRELS"] = worker_env["KAIROS_RANKER_QRELS"]
    monkeypatch.setattr(version_build, "load_pretrained", lambda: (tiny.encoder, tiny.tokenizer))
    monkeypatch.setattr(version_build, "export_query_encoder", lambda enc, tok, out, **_: copy_export(Path(out)))
    parent = create_version("zero-shot tiny")
    version_build.build_version(parent.id, lambda done, total: None)
    queries = [Query(f"s{i}", text) for i, text in enumerate(SHOPPING)]
    judgments = Judgments(grades={f"s{i}": r for i, r in enumerate(SHOPPING.values())}, gain_map=ESCI_GAINS)
    Simulator(queries, judgments, ShopperModel(refine_share=0.2)).run(lambda: ClientVisitor(worker_app), 40, seed=3)

    params = {"parent_version_id": parent.id, "train": TRAIN, "min_positive_pairs": 2, "gate_margin": 1.0}
    job = start_job("fine_tune", "training.fine_tune", params)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until training is past a checkpoint, then pull the plug
        db.session.expire_all()
        logs = (db.session.get(Job, job.id).result or {}).get("logs", [])
        if any(" step 20/" in line for line in logs):
            break
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        time.sleep(0.2)
    else:
        pytest.fail(f"training never reached step 20:\n{(tmp_path / 'worker.log').read_text()[-3000:]}")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    db.session.expire_all()
    assert db.session.get(Job, job.id).status == "running"  # nobody is left to say otherwise
    assert [v.id for v in db.session.scalars(select(ModelVersion))] == [parent.id]  # no half version
    checkpoints = list((tmp_path / "checkpoints" / f"fine_tune-job{job.id}").glob("checkpoint-*.pt"))
    assert len(checkpoints) == 1

    time.sleep(4)  # the dead run's lock lapses
    env = {
        **os.environ,
        **worker_env,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "KAIROS_INSTANCE_DIR": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    second = start_worker(tmp_path, env, "second")
    try:
        worker_app.extensions["celery"].send_task("training.fine_tune", args=[job.id])  # the re-run
        done = wait_for_job(job.id, second, tmp_path / "second.log", seconds=300)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    assert done.status == "succeeded", done.error
    assert done.result["training"]["resumed_from"] >= 5
    versions = db.session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
    assert [(v.status, v.parent_id) for v in versions] == [("active", None), ("ready", parent.id)]
    assert not list((tmp_path / "models").glob(".*partial*"))
    assert not (tmp_path / "checkpoints" / f"fine_tune-job{job.id}").exists()


def test_the_redis_lock_lets_one_run_in_and_lapses_when_its_holder_dies(worker_app):
    first, second = RedisLock(BROKER, 1, ttl_seconds=1.0), RedisLock(BROKER, 2, ttl_seconds=1.0)
    assert first.acquire() is None
    assert second.acquire() == 1  # refused, told who holds it
    first.refresh()
    assert RedisLock(BROKER, 1, 1.0).acquire() == 1  # a duplicate of the same job is refused as well
    first.release()
    assert second.acquire() is None
    time.sleep(1.3)  # the holder stops refreshing (its worker died): the lock lapses
    assert first.acquire() is None
    second.release()  # not its lock any more: nothing happens
    assert RedisLock(BROKER, 3, 1.0).acquire() == 1
    first.release()
