"""Activation's quality check (webapp.services.version_quality, engine.evaluation.probe):
a version whose artifacts load but retrieve the wrong products is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.judgments import DEMO_JUDGMENTS
from engine.evaluation.probe import PROBE_METRIC, load_probe, probe_ndcg
from engine.evaluation.split import load_split
from engine.serving.bundle import CHECKSUMS, MANIFEST, load_bundle, write_manifest
from engine.serving.vectors import EMBEDDINGS_FILE
from tests.unit.serving_fixtures import build_version_dir
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.model_versions import activate_version, create_version
from webapp.services.search_index import get_searcher, product_card


def test_the_probe_is_a_fixed_handful_of_train_queries_only():
    probe = load_probe(DEMO_JUDGMENTS)
    split = load_split()
    assert 5 <= len(probe.queries) <= 20
    assert {q.text for q in probe.queries} <= split.texts("train")
    assert not {q.text for q in probe.queries} & split.texts("test")
    assert load_probe(DEMO_JUDGMENTS) == probe and load_probe(None) is None


@pytest.fixture
def shop(app, make_product, tmp_path):
    """One product per probe query, titled as the query, judged Exact for it (a catalog the tiny model can find)."""
    probe = load_probe(DEMO_JUDGMENTS)
    products = [make_product(external_id=f"Q{i}", title=q.text) for i, q in enumerate(probe.queries)]
    ratings = [
        {"query": q.text, "ratings": [{"docId": p.external_id, "rating": "100.000"}]}
        for q, p in zip(probe.queries, products, strict=True)
    ]
    qrels = tmp_path / "judgments.json"
    qrels.write_text(json.dumps({"judgmentRatings": ratings}))
    app.config["RANKER_QRELS"] = str(qrels)
    return [product_card(p) for p in products]


def built_version(app, cards) -> ModelVersion:
    """A ready version with real artifacts and the probe figure its build would record."""
    version = create_version("candidate")
    build_version_dir(version.artifact_path, cards)
    bundle = load_bundle(version.artifact_path, version.id)
    figure = probe_ndcg(get_searcher(), load_probe(app.config["RANKER_QRELS"]), bundle)
    version.status, version.metrics = "ready", {PROBE_METRIC: figure}
    db.session.commit()
    return version


def shift_embeddings(directory: str) -> None:
    """Give each id its neighbour's vector, and sign the result as a build that wrote it so would:
    consistent checksums, every load check passes."""
    path = Path(directory)
    np.save(path / EMBEDDINGS_FILE, np.roll(np.load(path / EMBEDDINGS_FILE), 1, axis=0))
    manifest = json.loads((path / MANIFEST).read_text())
    manifest.pop(CHECKSUMS)
    write_manifest(path, manifest.pop("retrieval_mode"), manifest)


def test_a_version_that_scores_its_own_figure_is_activated(app, tiny_model, shop):
    version = built_version(app, shop)
    assert version.metrics[PROBE_METRIC] > 0.3, "the probe must see something to lose"
    assert activate_version(version.id).status == "active"


def test_readable_but_shifted_embeddings_are_refused(app, tiny_model, shop):
    version = built_version(app, shop)
    shift_embeddings(version.artifact_path)
    load_bundle(version.artifact_path, version.id)  # loads: only the quality check can tell
    with pytest.raises(InputError, match="quality check scores dense NDCG@10 .* against .* recorded at build"):
        activate_version(version.id)
    db.session.expire_all()
    assert db.session.get(ModelVersion, version.id).status == "ready"


def test_a_version_without_a_recorded_figure_is_not_probed(app, tiny_model, shop):
    version = built_version(app, shop)
    version.metrics = {}
    db.session.commit()
    shift_embeddings(version.artifact_path)
    assert activate_version(version.id).status == "active"
