"""The real packaged MiniLM builds a model version through a real Celery worker on Redis:
ONNX export, batched product embedding, atomic publish; the web side then serves it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.serving.bundle import MANIFEST, load_bundle
from engine.serving.lexical import Filters
from tests.integration.conftest import wait_for_job
from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.catalog_import import import_catalog
from webapp.services.jobs import start_job
from webapp.services.model_versions import create_version
from webapp.services.search_index import get_searcher
from webapp.services.serving_version import warm_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PRODUCTS = [
    ("T1", "Cotton kitchen towels, pack of 6", "Utopia"),
    ("T2", "Microfiber dish cloths for the kitchen", "Zwipes"),
    ("H1", "Wireless over-ear headphones with noise cancelling", "Sony"),
    ("H2", "Bluetooth earbuds with charging case", "JLab"),
    ("S1", "Running shoes for men, lightweight trainers", "Asics"),
    ("B1", "Benchtop band saw for metal cutting", "RIKON"),
    ("E1", "", "Nameless"),  # empty title is rejected by the importer; kept out below
    ("C1", "Stainless steel coffee mug, 16 oz", "Contigo"),
]


@pytest.fixture
def worker_env() -> dict:
    # No labelled queries for this tiny catalog: the build skips the int8 gate and ranker fit.
    return {"KAIROS_RANKER_QRELS": ""}


def _catalog(path: Path) -> Path:
    rows = [{"external_id": pid, "title": title, "brand": brand} for pid, title, brand in PRODUCTS if title]
    rows.append({"external_id": "D1", "title": "x", "brand": "", "description": ""})  # almost no text
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_build_version_through_celery_and_serve_it(worker_app, worker, tmp_path):
    import_catalog(_catalog(tmp_path / "catalog.jsonl"))
    worker_app.config["RANKER_QRELS"] = ""
    version = create_version("zero-shot test", retrieval_mode="hybrid")
    job = start_job("build_version", "inference.build_version", {"version_id": version.id})

    job = wait_for_job(job.id, worker, tmp_path / "worker.log", seconds=600)

    assert job.status == "succeeded", job.error
    assert job.progress == 1.0
    db.session.expire_all()
    version = db.session.get(ModelVersion, version.id)
    assert version.status == "active"  # the first version serves at once
    directory = Path(version.artifact_path)
    assert (directory / MANIFEST).is_file()
    assert not list(directory.parent.glob(".*partial*"))  # no half-written directory left behind
    bundle = load_bundle(directory, version.id)
    assert len(bundle.vectors) == 8  # every product, including the one with almost no text

    warm_up()
    searcher = get_searcher()
    assert searcher.bundle is not None and searcher.bundle.version_id == version.id
    hits, _, ranker = searcher.retrieve("earphones for music", Filters(), limit=3, mode="dense")
    assert ranker == f"dense:v{version.id}"
    assert {searcher.cards[pid].external_id for pid, _ in hits[:2]} == {"H1", "H2"}
