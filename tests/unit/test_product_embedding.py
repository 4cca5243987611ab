"""Embedding a list of products into a built version's vectors (worker.building.product_embedding)
and the inference.embed_products task body, with a version built from the tiny encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import worker.building.version_build as version_build
from engine.modeling.inference import embed_texts
from engine.serving.bundle import PRODUCT_MAX_LENGTH, load_bundle
from engine.serving.searcher import card_text
from engine.serving.vectors import MERGED_FILE, VectorIndex
from tests.unit.serving_fixtures import copy_export
from webapp.extensions import db
from webapp.models import Job, ModelVersion, Product, utcnow
from webapp.services.model_versions import create_version
from webapp.services.search_index import product_card
from worker.building.product_embedding import embed_products
from worker.tasks.inference import embed_products as embed_task

CATALOG = {"S1": "women's memory foam house slippers", "G1": "acoustic guitar for beginners", "X1": "garden hose"}


@pytest.fixture
def version(app, make_product, tiny_model, monkeypatch, tmp_path) -> ModelVersion:
    """An active version built by the real build pipeline from the tiny encoder, over CATALOG."""
    for external_id, title in CATALOG.items():
        make_product(external_id=external_id, title=title, brand="")
    app.config["RANKER_QRELS"] = str(tmp_path / "absent.json")
    monkeypatch.setattr(version_build, "load_pretrained", lambda: (tiny_model.encoder, tiny_model.tokenizer))
    monkeypatch.setattr(version_build, "export_query_encoder", lambda enc, tok, out, **_: copy_export(Path(out)))
    version = create_version("tiny")
    version_build.build_version(version.id, lambda done, total: None)
    return db.session.get(ModelVersion, version.id)


def torch_vectors(tiny_model, products: list[Product]) -> np.ndarray:
    texts = [card_text(product_card(p)) for p in products]
    return embed_texts(tiny_model.encoder, tiny_model.tokenizer, texts, max_length=PRODUCT_MAX_LENGTH, device="cpu")


def by_external(external_id: str) -> Product:
    return db.session.scalar(db.select(Product).where(Product.external_id == external_id))


def test_new_edited_and_deactivated_products_are_merged(version, make_product, tiny_model):
    new = make_product(external_id="K1", title="kindle paperwhite e-reader", brand="")
    empty = make_product(external_id="E1", title="", brand="", description="")  # no text at all: still a vector
    edited, gone = by_external("G1"), by_external("X1")
    edited.title, gone.is_active = "electric guitar amplifier", False
    db.session.commit()
    calls: list[tuple[int, int]] = []

    result = embed_products(
        version.id, [new.id, edited.id, gone.id, empty.id, 999_999, new.id], lambda d, t: calls.append((d, t))
    )

    assert result == {"version_id": version.id, "embedded": 3, "stored": 4, "added": 2, "removed": 1}
    stored = VectorIndex.load(version.artifact_path)
    assert sorted(stored.ids().tolist()) == sorted([by_external("S1").id, edited.id, new.id, empty.id])
    ids, matrix = stored.lookup([new.id, edited.id, empty.id])
    np.testing.assert_allclose(matrix, torch_vectors(tiny_model, [new, edited, empty]), atol=1e-5)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 1000 and {t for _, t in calls} == {1000}
    bundle = load_bundle(version.artifact_path, version.id)  # what a web worker loads next
    assert new.id in bundle.vectors and gone.id not in bundle.vectors
    query = bundle.encoder.encode_query(card_text(product_card(new)))
    assert bundle.vectors.search(query, 1)[0][0] == new.id


def test_a_rerun_leaves_the_same_vectors(version, make_product):
    new = make_product(external_id="K1", title="kindle paperwhite e-reader", brand="")
    embed_products(version.id, [new.id], lambda done, total: None)
    first = VectorIndex.load(version.artifact_path).vectors()
    again = embed_products(version.id, [new.id], lambda done, total: None)
    assert again["added"] == 0 and again["removed"] == 0
    second = VectorIndex.load(version.artifact_path).vectors()
    order1, order2 = np.argsort(first[0]), np.argsort(second[0])
    assert np.array_equal(first[0][order1], second[0][order2])
    np.testing.assert_allclose(first[1][order1], second[1][order2], atol=1e-6)


@pytest.mark.parametrize("status", ["building", "failed"])
def test_versions_that_do_not_serve_are_skipped(version, status):
    version.status = status
    db.session.commit()
    assert embed_products(version.id, [1], lambda done, total: None) == {"skipped": f"version {version.id} is {status}"}
    assert embed_products(404, [1], lambda done, total: None) == {"skipped": "version 404 is missing"}
    assert not (Path(version.artifact_path) / MERGED_FILE).exists()


def test_the_task_records_the_run_on_its_job_row(version, make_product):
    new = make_product(external_id="K1", title="kindle paperwhite e-reader", brand="")
    job = Job(kind="embed_products", status="queued", params={"version_id": version.id, "product_ids": [new.id]})
    db.session.add(job)
    db.session.commit()

    result = embed_task(job.id)  # the task body, in-process

    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert (job.status, job.progress, job.error) == ("succeeded", 1.0, "")
    assert job.result == result and result["embedded"] == 1
    assert job.started_at <= job.finished_at <= utcnow()
    assert embed_task(job.id) is None  # a redelivery of finished work does nothing


def test_a_missing_artifact_directory_fails_the_job_clearly(version, make_product, tmp_path):
    new = make_product(external_id="K1", title="kindle paperwhite e-reader", brand="")
    version.artifact_path = str(tmp_path / "nowhere")
    job = Job(kind="embed_products", status="queued", params={"version_id": version.id, "product_ids": [new.id]})
    db.session.add(job)
    db.session.commit()
    with pytest.raises(FileNotFoundError):
        embed_task(job.id)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.status == "failed" and "is not a complete model version" in job.error
