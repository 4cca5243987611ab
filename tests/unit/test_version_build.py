"""Building a model version end to end (worker.building.version_build) with the tiny model.

The first build runs every step for real; later builds copy the session's ONNX export of
the same tiny encoder instead of exporting again (the one slow step, about ten seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import worker.building.version_build as version_build
from engine.evaluation.split import load_split
from engine.modeling.config import HeadConfig, ModelConfig
from engine.modeling.export import FP32_FILE
from engine.modeling.heads import MultiTaskModel
from engine.modeling.io import is_complete
from engine.serving.bundle import MANIFEST, RANKER, BundleError, load_bundle
from engine.serving.heads import HEADS_FILE
from engine.serving.ranker import FEATURES
from engine.serving.vectors import VectorIndex
from tests.unit.serving_fixtures import copy_export
from webapp.extensions import db
from webapp.models import Job, ModelVersion
from webapp.services.model_versions import create_version
from worker.tasks.inference import build_version as build_task

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
# Real query texts of the demo split, so the build's own load_split() puts them in a half.
JUDGMENTS = {
    "ugg slippers women": {"S1": 100, "S2": 10, "S3": 1, "X1": 0},
    "couch pillows": {"C1": 100, "C2": 10, "X1": 0},
    "guitar": {"G1": 100, "G2": 1, "X1": 0},
    "kindle": {"K1": 100, "K2": 1, "X1": 0},
    "thin leather strap": {"L1": 100, "X1": 0},
    "red dog bowl": {"D1": 100, "X1": 0},
}
TRAIN = {"ugg slippers women", "couch pillows", "guitar", "kindle"}


@pytest.fixture
def catalog(make_product):
    return [make_product(external_id=ext, title=title, brand="") for ext, title in CATALOG.items()]


@pytest.fixture
def tiny_build(monkeypatch, tiny_model):
    """The build loads the tiny encoder where it would load the packaged MiniLM."""
    monkeypatch.setattr(version_build, "load_pretrained", lambda: (tiny_model.encoder, tiny_model.tokenizer))


@pytest.fixture
def cached_export(monkeypatch, tiny_build):
    """export_query_encoder for the tiny encoder, served from the session's export of it."""

    def export(encoder, tokenizer, out_dir, max_length=32, **_):
        assert max_length == 32
        copy_export(Path(out_dir))

    monkeypatch.setattr(version_build, "export_query_encoder", export)


@pytest.fixture
def qrels(app, tmp_path):
    path = tmp_path / "judgments.json"
    body = {
        "judgmentRatings": [
            {"query": query, "ratings": [{"docId": doc, "rating": f"{grade}.000"} for doc, grade in ratings.items()]}
            for query, ratings in JUDGMENTS.items()
        ]
    }
    path.write_text(json.dumps(body))
    app.config["RANKER_QRELS"] = str(path)
    return path


@pytest.fixture
def no_qrels(app, tmp_path):
    app.config["RANKER_QRELS"] = str(tmp_path / "absent.json")


def test_demo_split_places_the_test_queries():
    split = load_split()
    assert TRAIN <= split.texts("train") and set(JUDGMENTS) - TRAIN <= split.texts("test")


def reload(version_id: int) -> ModelVersion:
    db.session.expire_all()
    return db.session.get(ModelVersion, version_id)


def test_first_build_runs_every_step_and_serves(app, catalog, tiny_build, qrels):
    version = create_version("zero-shot")
    calls: list[tuple[int, int]] = []
    result = version_build.build_version(
        version.id, lambda done, total: calls.append((done, total)), version_build.BuildSettings(batch_size=3)
    )
    version = reload(version.id)
    assert version.status == "active" and version.activated_at is not None  # the first version serves at once
    assert result["status"] == "active" and result["products"] == len(CATALOG)
    directory = Path(version.artifact_path)
    assert is_complete(directory)  # the torch checkpoint a later fine-tune starts from
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["retrieval_mode"] == "hybrid" and manifest["products"] == len(CATALOG)
    assert manifest["serve_variant"] == version.metrics["serve_variant"] in ("fp32", "int8")
    # Progress: every call out of 1000, never backwards, embedding reported batch by batch.
    assert {total for _, total in calls} == {1000}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] == 10 and done[-1] == 980 and len(done) >= 8
    # The labelled path: int8 judged on train, the ranker fitted on its fit part, what serves chosen on
    # validation; the test half is never read.
    metrics = version.metrics
    for key in (
        "dense_ndcg10_fp32",
        "dense_ndcg10_int8",
        "int8_relative_drop",
        "validation_ndcg10_lexical",
        "validation_ndcg10_dense",
        "validation_ndcg10_rrf",
        "validation_ndcg10_hybrid",
    ):
        assert 0.0 <= metrics[key] <= 1.0 or key == "int8_relative_drop", key
    assert not any(key.startswith("test_") for key in metrics)
    assert (metrics["fit_queries"], metrics["validation_queries"]) == (3, 1)
    served = metrics["served_pipeline"]
    assert served in ("ranker", "rrf", "lexical", "dense") and set(metrics["selection"]) <= {"rrf", "lexical", "dense"}
    assert (directory / RANKER).is_file() == (served != "rrf")
    assert metrics["validation_ndcg10_hybrid"] == metrics[f"validation_ndcg10_{served}"]
    bundle = load_bundle(directory, version.id)
    assert sorted(bundle.vectors.ids().tolist()) == sorted(p.id for p in catalog)
    assert (bundle.ranker is not None) == (served != "rrf")
    # Zero-shot heads are random initial weights: not exported, so their ranker columns stay 0.
    assert manifest["heads"] == [] and not (directory / HEADS_FILE).exists() and bundle.heads is None
    assert not bundle.ranker or not any(bundle.ranker.weights.get(name) for name in ("click", "purchase"))


def test_without_labels_serves_fp32_with_rrf(app, catalog, cached_export, no_qrels):
    version = create_version("zero-shot", retrieval_mode="rrf")
    version_build.build_version(version.id, lambda done, total: None)
    version = reload(version.id)
    assert version.metrics == {"note": "no labelled queries: fp32 encoder, RRF fusion", "products": len(CATALOG)}
    directory = Path(version.artifact_path)
    assert json.loads((directory / MANIFEST).read_text())["serve_variant"] == "fp32"
    assert not (directory / RANKER).exists()
    assert load_bundle(directory, version.id).retrieval_mode == "rrf"


def test_a_second_build_waits_as_ready(app, catalog, cached_export, no_qrels):
    first, second = create_version("one"), create_version("two")
    version_build.build_version(first.id, lambda done, total: None)
    version_build.build_version(second.id, lambda done, total: None)
    assert (reload(first.id).status, reload(second.id).status) == ("active", "ready")
    assert reload(second.id).activated_at is None
    again = version_build.build_version(second.id, lambda done, total: None)
    assert again == {"skipped": f"version {second.id} is ready"}
    assert version_build.build_version(999, lambda done, total: None) == {"skipped": "version 999 is missing"}


def test_child_version_starts_from_its_parent_weights(app, catalog, cached_export, no_qrels, monkeypatch):
    parent = create_version("parent")
    version_build.build_version(parent.id, lambda done, total: None)
    monkeypatch.setattr(version_build, "load_pretrained", lambda: pytest.fail("a child must not load MiniLM"))
    child = create_version("child", parent_id=parent.id)
    version_build.build_version(child.id, lambda done, total: None)
    assert reload(child.id).status == "ready"
    ids_p, parent_vectors = VectorIndex.load(reload(parent.id).artifact_path).vectors()
    ids_c, child_vectors = VectorIndex.load(reload(child.id).artifact_path).vectors()
    assert ids_p.tolist() == ids_c.tolist() and np.allclose(parent_vectors, child_vectors, atol=1e-5)


def test_leftovers_of_a_dead_attempt_are_discarded(app, catalog, cached_export, no_qrels):
    version = create_version("retried")
    stale = Path(version.artifact_path)
    stale.mkdir(parents=True)
    (stale / "half-written.npy").write_bytes(b"...")
    version_build.build_version(version.id, lambda done, total: None)
    assert not (stale / "half-written.npy").exists() and (stale / MANIFEST).is_file()


def test_empty_catalog_is_an_error(app, cached_export, no_qrels):
    version = create_version("nothing to embed")
    with pytest.raises(ValueError, match="no active products"):
        version_build.build_version(version.id, lambda done, total: None)
    assert reload(version.id).status == "building"


def start_build_job(version_id: int) -> Job:
    job = Job(kind="build_version", status="queued", params={"version_id": version_id})
    db.session.add(job)
    db.session.commit()
    return job


def test_task_runs_the_build_as_a_job(app, catalog, cached_export, no_qrels):
    version = create_version("via celery task body")
    job = start_build_job(version.id)
    result = build_task(job.id)  # the task body, in-process (no broker, no eager mode)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert (job.status, job.progress, job.error) == ("succeeded", 1.0, "")
    assert job.result == result and result["version_id"] == version.id
    assert reload(version.id).status == "active"
    assert build_task(job.id) is None  # a redelivery of finished work does nothing


def test_a_crash_leaves_nothing_behind(app, catalog, cached_export, no_qrels, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(version_build, "embed_texts", crash)
    version = create_version("doomed")
    with pytest.raises(RuntimeError, match="out of memory"):
        version_build.build_version(version.id, lambda done, total: None)
    target = Path(version.artifact_path)
    assert not target.exists() and list(target.parent.iterdir()) == []  # no partial directory either
    assert reload(version.id).status == "building"

    job = start_build_job(version.id)
    with pytest.raises(RuntimeError, match="out of memory"):
        build_task(job.id)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.status == "failed" and job.error == "RuntimeError: CUDA out of memory"
    assert job.finished_at is not None and job.progress < 1.0
    failed = reload(version.id)  # a failed build's version never says "building" again
    assert failed.status == "failed" and "out of memory" in failed.metrics["error"] and not target.exists()
    assert db.session.scalar(select(db.func.count(ModelVersion.id))) == 1


def test_a_build_whose_bundle_does_not_load_is_failed(app, catalog, cached_export, no_qrels, monkeypatch):
    def broken_export(encoder, tokenizer, out_dir, **_):
        copy_export(Path(out_dir))
        (Path(out_dir) / FP32_FILE).write_bytes(b"truncated")  # the variant served without labels

    monkeypatch.setattr(version_build, "export_query_encoder", broken_export)
    version = create_version("unservable")
    with pytest.raises(BundleError, match="cannot load"):
        version_build.build_version(version.id, lambda done, total: None)
    version = reload(version.id)
    assert version.status == "failed" and version.activated_at is None
    assert "cannot load" in version.metrics["error"] and version.metrics["products"] == len(CATALOG)


def trained_tiny(tiny_model):
    config = ModelConfig(heads=HeadConfig(mlp_hidden=16))
    return MultiTaskModel(tiny_model.encoder, config.heads), tiny_model.tokenizer, config


def test_trained_heads_are_served_fitted_on_and_inherited(app, catalog, cached_export, qrels, tiny_model, monkeypatch):
    fitted: list = []
    fit = version_build.fit_ranker

    def spy(searcher, labels):
        ranker = fit(searcher, labels)
        fitted.append((searcher.candidate_features("guitar")[1], ranker))
        return ranker

    monkeypatch.setattr(version_build, "fit_ranker", spy)
    parent = create_version("fine-tuned")
    version_build.build_version(
        parent.id, lambda done, total: None, trained=trained_tiny(tiny_model), trained_heads=("purchase", "click")
    )
    directory = Path(reload(parent.id).artifact_path)
    assert json.loads((directory / MANIFEST).read_text())["heads"] == ["click", "purchase"]
    assert load_bundle(directory, parent.id).heads.names == ("click", "purchase")
    [(features, ranker)] = fitted  # the ranker was fitted with the heads' predictions in its columns
    assert features[:, FEATURES.index("click")].any() and features[:, FEATURES.index("purchase")].any()
    assert ranker is None or ranker.weights["click"] != 0.0

    child = create_version("rebuilt", parent_id=parent.id)
    version_build.build_version(child.id, lambda done, total: None)
    child_dir = Path(reload(child.id).artifact_path)
    assert (child_dir / HEADS_FILE).read_bytes() == (directory / HEADS_FILE).read_bytes()


def test_heads_without_labels_are_not_served(app, catalog, cached_export, no_qrels, tiny_model):
    version = create_version("fine-tuned without click labels")
    version_build.build_version(version.id, lambda done, total: None, trained=trained_tiny(tiny_model))
    directory = Path(reload(version.id).artifact_path)
    assert json.loads((directory / MANIFEST).read_text())["heads"] == []
    assert load_bundle(directory, version.id).heads is None


def test_a_shops_trec_judgments_fit_the_ranker_and_judge_on_their_own_split(app, catalog, cached_export, tmp_path):
    texts = {
        "t1": ("womens slippers", {"S1": 2, "S2": 2, "S3": 1, "X1": 0}),
        "t2": ("pillow covers", {"C2": 2, "C1": 1, "X1": 0}),
        "t3": ("beginner guitar", {"G1": 2, "G2": 1}),
        "t4": ("kindle reader", {"K1": 2, "K2": 1}),
        "t5": ("leather strap", {"L1": 2, "X1": 0}),
        "t6": ("dog bowl", {"D1": 2, "X1": 0}),
    }
    assert not set(t for t, _ in texts.values()) & load_split().texts("all")  # not the demo's queries
    queries, qrels = tmp_path / "queries.tsv", tmp_path / "qrels.txt"
    queries.write_text("".join(f"{qid}\t{text}\n" for qid, (text, _) in texts.items()))
    qrels.write_text("".join(f"{qid} 0 {doc} {g}\n" for qid, (_, docs) in texts.items() for doc, g in docs.items()))
    app.config.update(RANKER_QRELS=str(qrels), RANKER_QUERIES=str(queries))
    version = create_version("zero-shot")
    version_build.build_version(version.id, lambda done, total: None)
    metrics = reload(version.id).metrics
    assert "note" not in metrics  # the labelled path ran: int8 judged, ranker fitted, the choice made
    assert (metrics["fit_queries"], metrics["validation_queries"]) == (2, 1)
    assert "dense_ndcg10_int8" in metrics and metrics["served_pipeline"] in ("ranker", "rrf", "lexical", "dense")
    assert set(metrics["selection"]) and all("low" in t and "queries" in t for t in metrics["selection"].values())
    [stored] = (Path(app.config["INSTANCE_DIR"]) / "splits").glob("split-*.json")
    split = json.loads(stored.read_text())
    assert len(split["train"]) == len(split["test"]) == 3 and set(split["train"]) | set(split["test"]) == {
        text for text, _ in texts.values()
    }
    again = create_version("rebuild")  # the stored split is reused, not drawn again
    version_build.build_version(again.id, lambda done, total: None)
    assert list((Path(app.config["INSTANCE_DIR"]) / "splits").glob("split-*.json")) == [stored]
    assert reload(again.id).metrics["validation_queries"] == 1
