"""Per-variant serving: each visitor's search is answered by their variant's model version and
mode, and the search, its impressions and the exposure record it (two tiny-model versions)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from engine.serving.bundle import load_bundle
from engine.serving.searcher import Searcher, SearchRequest
from tests.unit.serving_fixtures import build_version_dir, card
from webapp.extensions import db
from webapp.models import Experiment, ExperimentAssignment, Impression, ModelVersion
from webapp.services.assignment import assign, running_experiment, serving_for
from webapp.services.experiments import (
    VariantSpec,
    create_experiment,
    promote_winner,
    start_experiment,
    stop_experiment,
    variants_of,
)
from webapp.services.model_versions import activate_version, create_version
from webapp.services.search import search_and_log
from webapp.services.search_index import product_card, searcher_state, sync_searcher
from webapp.services.serving_version import follow_active_version, version_load_state

TITLES = ["red running shoes", "blue rain jacket", "green garden gloves", "steel water bottle", "wool socks"]


@pytest.fixture(autouse=True)
def _clear_winners(app):
    """drop_all cannot untie experiments.winner_variant_id on SQLite (no ALTER): untie it first."""
    yield
    db.session.rollback()
    db.session.execute(update(Experiment).values(winner_variant_id=None))
    db.session.commit()


@pytest.fixture
def versions(app, make_product, tiny_model) -> tuple[ModelVersion, ModelVersion]:
    """Two loadable versions over the catalog; the first is active (hybrid, no ranker: serves "rrf")."""
    products = [make_product(title=title) for title in TITLES]
    rows = []
    for name in ("one", "two"):
        row = create_version(name)
        build_version_dir(row.artifact_path, [product_card(p) for p in products])
        row.status = "ready"
        db.session.commit()
        rows.append(row)
    activate_version(rows[0].id)
    return rows[0], rows[1]


@pytest.fixture
def experiment(versions) -> Experiment:
    one, two = versions
    experiment = create_experiment(
        "rrf v1 against dense v2",
        [VariantSpec("rrf", 0.5, one.id, "rrf", True), VariantSpec("dense", 0.5, two.id, "dense")],
    )
    return start_experiment(experiment.id)


def visitor_in(variant_name: str) -> str:
    """A visitor id that hashes into the named variant of the running experiment."""
    live = running_experiment()
    return next(f"shopper-{n}" for n in range(1000) if assign(live, f"shopper-{n}").name == variant_name)


def test_visitors_in_different_variants_get_different_rankers(app, versions, experiment):
    one, two = versions
    follow_active_version(wait=True)  # the worker loads the active version and both variants' versions
    assert version_load_state(one.id) == version_load_state(two.id) == "loaded"
    control, treatment = variants_of(experiment.id)
    seen = {}
    for variant, ranker, version_id in ((control, f"rrf:v{one.id}", one.id), (treatment, f"dense:v{two.id}", two.id)):
        visitor = visitor_in(variant.name)
        query, response = search_and_log(SearchRequest(text="running shoes"), visitor)
        assert response.ranker == ranker and response.hits
        assert query.variant_id == variant.id
        impressions = db.session.scalars(select(Impression).where(Impression.search_id == query.id)).all()
        assert impressions and {(i.ranker, i.model_version_id) for i in impressions} == {(ranker, version_id)}
        assignment = db.session.scalar(select(ExperimentAssignment).where(ExperimentAssignment.visitor_id == visitor))
        assert assignment.variant_id == variant.id and assignment.experiment_id == experiment.id
        seen[variant.name] = [h.card.id for h in response.hits]
    assert set(seen) == {"rrf", "dense"}


def test_the_api_serves_the_cookie_visitors_variant(app, client, versions, experiment):
    follow_active_version(wait=True)
    body = client.get("/api/search?q=rain+jacket").get_json()
    assignment = db.session.scalar(select(ExperimentAssignment))
    variant = next(v for v in variants_of(experiment.id) if v.id == assignment.variant_id)
    expected = f"rrf:v{versions[0].id}" if variant.name == "rrf" else f"dense:v{versions[1].id}"
    assert body["ranker"] == expected


def test_nothing_is_attributed_until_every_variant_is_loaded(app, versions, experiment):
    app.config["VERSION_CHECK_SECONDS"] = 3600.0  # the worker looks only when this test says so
    sync_searcher(force=True)
    searcher_state().last_version_check = time.monotonic()
    assert searcher_state().searcher.extra_bundles == {}  # the worker has not looked at the experiment yet
    visitor = visitor_in("dense")
    assert serving_for(visitor).variant is None
    query, response = search_and_log(SearchRequest(text="running shoes"), visitor)
    assert query.variant_id is None and not response.ranker.startswith("dense")
    assert db.session.scalars(select(ExperimentAssignment)).all() == []  # not exposed yet
    follow_active_version(wait=True)
    query, response = search_and_log(SearchRequest(text="running shoes"), visitor)
    assert query.variant_id is not None and response.ranker == f"dense:v{versions[1].id}"


def test_new_products_are_embedded_into_every_held_bundle(app, versions, experiment, make_product):
    follow_active_version(wait=True)
    searcher = searcher_state().searcher
    product = make_product(title="purple yoga mat")
    sync_searcher(force=True)
    extra = searcher.extra_bundles[versions[1].id]
    assert product.id in searcher.bundle.vectors and product.id in extra.vectors
    query, response = search_and_log(SearchRequest(text="yoga mat"), visitor_in("dense"))
    assert product.id in [h.card.id for h in response.hits]


def test_stopping_drops_the_variant_bundles(app, versions, experiment):
    follow_active_version(wait=True)
    assert set(searcher_state().searcher.extra_bundles) == {versions[0].id, versions[1].id}
    stop_experiment(experiment.id)
    follow_active_version(wait=True)
    assert searcher_state().searcher.extra_bundles == {}
    query, _ = search_and_log(SearchRequest(text="socks"), "after-the-experiment")
    assert query.variant_id is None


def test_promotion_serves_the_held_bundle_in_the_winners_mode(app, versions, experiment):
    follow_active_version(wait=True)
    held = searcher_state().searcher.extra_bundles[versions[1].id]
    promote_winner(experiment.id, variants_of(experiment.id)[1].id)
    follow_active_version(wait=True)
    searcher = searcher_state().searcher
    assert searcher.bundle.version_id == versions[1].id and searcher.bundle.vectors is held.vectors  # no reload
    assert searcher.mode == "dense"
    _, response = search_and_log(SearchRequest(text="socks"), "anyone")
    assert response.ranker == f"dense:v{versions[1].id}" and response.model_version_id == versions[1].id


def test_searcher_bundle_override(tmp_path, tiny_model):
    cards = [card(i + 1, title) for i, title in enumerate(TITLES)]
    searcher = Searcher(candidates=20)
    searcher.apply_changes(cards, [])
    searcher.attach(load_bundle(build_version_dir(tmp_path / "v1", cards), 1))
    other = load_bundle(build_version_dir(tmp_path / "v2", cards[:3]), 2)
    searcher.add_bundle(other)
    assert {int(i) for i in other.vectors.ids()} == {c.id for c in cards}  # the products it lacked were embedded
    _, _, ranker = searcher.retrieve("socks", mode="dense", bundle=other)
    assert ranker == "dense:v2"
    response = searcher.search(SearchRequest(text="socks"), bundle=other, mode="rrf")
    assert response.ranker == "rrf:v2" and response.model_version_id == 2
    response = searcher.search(SearchRequest(text="socks"))
    assert response.ranker == "rrf:v1" and response.model_version_id == 1
    lexical = searcher.search(SearchRequest(text="socks"), bundle=other, mode="lexical")
    assert lexical.ranker == "lexical" and lexical.model_version_id is None
    searcher.apply_changes([], [5])
    assert 5 not in other.vectors and 5 not in searcher.bundle.vectors
    searcher.drop_bundle(2)
    assert searcher.extra_bundles == {}
