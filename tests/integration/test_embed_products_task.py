"""A catalog import through a real Celery worker on Redis queues inference.embed_products for the
active version, and the same worker embeds the new and edited products into that version's
stored vectors (the version is built here, in the test process, from the tiny encoder; the
worker loads it from disk like any version)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import worker.building.version_build as version_build
from engine.modeling.inference import embed_texts
from engine.serving.bundle import PRODUCT_MAX_LENGTH, load_bundle
from engine.serving.searcher import card_text
from engine.serving.vectors import MERGED_FILE, VectorIndex
from tests.integration.conftest import wait_for_job
from tests.unit.serving_fixtures import copy_export, tiny_model
from webapp.extensions import db
from webapp.models import ModelVersion, Product
from webapp.services.catalog_import import import_catalog
from webapp.services.jobs import start_job
from webapp.services.model_versions import create_version
from webapp.services.search_index import product_card

pytestmark = pytest.mark.integration

FIRST = {"T1": "Cotton kitchen towels, pack of 6", "H1": "Wireless over-ear headphones", "S1": "Running shoes"}
LATER = {"T1": "Cotton kitchen towels, pack of 6", "H1": "Bluetooth earbuds with charging case", "B1": "Band saw"}


@pytest.fixture
def worker_env() -> dict:
    return {"KAIROS_RANKER_QRELS": ""}


def _catalog(path: Path, titles: dict[str, str]) -> Path:
    rows = [{"external_id": e, "title": t, "brand": "Acme"} for e, t in titles.items()]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _tiny_version(worker_app, monkeypatch) -> ModelVersion:
    tiny = tiny_model()
    worker_app.config["RANKER_QRELS"] = ""
    monkeypatch.setattr(version_build, "load_pretrained", lambda: (tiny.encoder, tiny.tokenizer))
    monkeypatch.setattr(version_build, "export_query_encoder", lambda enc, tok, out, **_: copy_export(Path(out)))
    version = create_version("zero-shot tiny")
    version_build.build_version(version.id, lambda done, total: None)
    return db.session.get(ModelVersion, version.id)


def test_an_import_embeds_its_products_into_the_active_version(worker_app, worker, tmp_path, monkeypatch):
    import_catalog(_catalog(tmp_path / "first.jsonl", FIRST))
    version = _tiny_version(worker_app, monkeypatch)
    assert version.status == "active"
    log = tmp_path / "worker.log"

    imported = start_job("catalog_import", "catalog.import_file", {"path": str(_catalog(tmp_path / "b.jsonl", LATER))})
    imported = wait_for_job(imported.id, worker, log)
    assert imported.status == "succeeded", imported.error
    assert (imported.result["created"], imported.result["updated"], imported.result["unchanged"]) == (1, 1, 1)
    embedded = wait_for_job(imported.result["embed_job_id"], worker, log, seconds=120)

    assert embedded.status == "succeeded", embedded.error
    assert embedded.progress == 1.0 and embedded.kind == "embed_products"
    products = {p.external_id: p for p in db.session.scalars(select(Product))}
    assert embedded.params == {"version_id": version.id, "product_ids": sorted([products["H1"].id, products["B1"].id])}
    assert embedded.result["embedded"] == 2 and embedded.result["stored"] == 4
    directory = Path(version.artifact_path)
    assert (directory / MERGED_FILE).is_file() and not list(directory.glob("*.tmp"))
    # The worker's vectors are the torch encoder's, from the products' current text.
    tiny = tiny_model()
    changed = [products["H1"], products["B1"]]
    expected = embed_texts(
        tiny.encoder, tiny.tokenizer, [card_text(product_card(p)) for p in changed], max_length=PRODUCT_MAX_LENGTH
    )
    ids, stored = VectorIndex.load(directory).lookup([p.id for p in changed])
    assert ids == [p.id for p in changed]
    np.testing.assert_allclose(stored, expected, atol=1e-5)
    # A web worker loading the version now finds the new product by meaning, with no embedding of its own.
    bundle = load_bundle(directory, version.id)
    assert sorted(bundle.vectors.ids().tolist()) == sorted(p.id for p in products.values())
    query = bundle.encoder.encode_query(card_text(product_card(products["B1"])))
    assert bundle.vectors.search(query, 1)[0][0] == products["B1"].id
