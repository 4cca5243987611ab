"""Each web worker follows the active model version, loading in the background and swapping safely."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.modeling.export import FP32_FILE
from tests.unit.serving_fixtures import build_version_dir
from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.model_versions import activate_version, create_version
from webapp.services.search_index import product_card, searcher_state, sync_searcher
from webapp.services.serving_version import follow_active_version, serving_status, warm_up

TITLES = ["red running shoes", "blue rain jacket", "green garden gloves", "steel water bottle", "wool socks"]


@pytest.fixture
def catalog(make_product):
    return [make_product(title=title) for title in TITLES]


def ready_version(products, mode: str = "hybrid") -> ModelVersion:
    version = create_version(f"test {mode}", retrieval_mode=mode)
    build_version_dir(version.artifact_path, [product_card(p) for p in products])
    version.status = "ready"
    db.session.commit()
    return version


def test_follows_the_active_version(app, catalog, tiny_model):
    state = searcher_state()
    warm_up()
    assert state.searcher.bundle is None and state.searcher.mode == "lexical"
    version = ready_version(catalog)
    activate_version(version.id)
    follow_active_version(wait=True)
    assert state.version_id == version.id and state.searcher.bundle.version_id == version.id
    assert state.searcher.mode == "hybrid"
    assert serving_status() == {
        "version_id": version.id,
        "mode": "hybrid",
        "ranker": f"rrf:v{version.id}",  # hybrid without a kept ranker serves, and says, RRF
        "loading": None,
        "failed": {},
    }
    hits, _, ranker = state.searcher.retrieve("running shoes")
    assert ranker == f"rrf:v{version.id}" and hits


def test_retrieval_mode_comes_from_the_version_row(app, catalog, tiny_model):
    version = ready_version(catalog, mode="dense")  # the manifest says dense too; the row is what serves
    version.retrieval_mode = "rrf"
    db.session.commit()
    activate_version(version.id)
    warm_up()
    assert searcher_state().searcher.mode == "rrf"


def test_corrupt_active_version_is_remembered_and_the_last_good_one_serves(app, catalog, tiny_model):
    state = searcher_state()
    good = ready_version(catalog)
    activate_version(good.id)
    warm_up()
    bundle = state.searcher.bundle
    broken = ready_version(catalog)
    activate_version(broken.id)  # loads fine here; the files go missing afterwards (a bad disk, a bad copy)
    (Path(broken.artifact_path) / FP32_FILE).unlink()
    follow_active_version(wait=True)
    assert state.searcher.bundle is bundle and state.version_id == good.id
    assert broken.id in state.failed_versions and "is missing" in state.failed_versions[broken.id]
    assert serving_status()["failed"] == {broken.id: state.failed_versions[broken.id]}
    # Remembered: later checks do not try (and fail) again on every request.
    state.failed_versions[broken.id] = "sentinel"
    follow_active_version(wait=True)
    assert state.failed_versions[broken.id] == "sentinel" and state.loading_version is None


def test_no_active_version_goes_back_to_lexical(app, catalog, tiny_model):
    state = searcher_state()
    version = ready_version(catalog)
    activate_version(version.id)
    warm_up()
    assert state.searcher.bundle is not None
    version.status = "retired"
    db.session.commit()
    follow_active_version(wait=True)
    assert state.searcher.bundle is None and state.version_id is None and state.searcher.mode == "lexical"


def test_checks_are_throttled(app, catalog, tiny_model):
    app.config["VERSION_CHECK_SECONDS"] = 3600.0
    state = searcher_state()
    follow_active_version()  # the first check always runs
    version = ready_version(catalog)
    activate_version(version.id)
    follow_active_version()
    assert state.version_id is None and state.loading_version is None
    follow_active_version(wait=True)  # warm-up style calls skip the throttle
    assert state.version_id == version.id


def test_background_load_attaches_a_product_added_meanwhile(app, make_product, catalog, tiny_model):
    app.config["VERSION_CHECK_SECONDS"] = 0.0
    version = ready_version(catalog)
    activate_version(version.id)
    sync_searcher(force=True)
    late = make_product(title="handmade leather dog collar")  # not in the version's embeddings
    follow_active_version()  # starts the load in a thread
    state = searcher_state()
    deadline = time.monotonic() + 20
    while state.version_id != version.id and time.monotonic() < deadline:
        time.sleep(0.05)
    sync_searcher(force=True)
    assert state.version_id == version.id
    hits, _, _ = state.searcher.retrieve("handmade leather dog collar. brand: Acme", mode="dense")
    assert hits[0][0] == late.id


def search_loop(app, stop: threading.Event, log: list) -> None:
    """One shopper's browser: its own client, searching until told to stop."""
    client = app.test_client()
    while not stop.is_set():
        response = client.get("/api/search?q=rain+jacket")
        ranker = response.get_json().get("ranker") if response.is_json else None
        log.append((time.monotonic(), response.status_code, ranker))


def test_hot_swap_under_concurrent_requests(app, catalog, tiny_model):
    app.config["VERSION_CHECK_SECONDS"] = 0.1
    v1, v2 = ready_version(catalog), ready_version(catalog)
    activate_version(v1.id)
    warm_up()
    stop = threading.Event()
    logs: list[list] = [[] for _ in range(4)]
    threads = [threading.Thread(target=search_loop, args=(app, stop, log), daemon=True) for log in logs]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        activated = time.monotonic()
        activate_version(v2.id)
        deadline = activated + 10
        while time.monotonic() < deadline and not all(any(r == f"rrf:v{v2.id}" for _, _, r in log) for log in logs):
            time.sleep(0.05)
        time.sleep(0.3)  # a few more requests after the swap
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    entries = [entry for log in logs for entry in log]
    assert len(entries) > 20 and all(status == 200 for _, status, _ in entries)
    assert {ranker for _, _, ranker in entries} == {f"rrf:v{v1.id}", f"rrf:v{v2.id}"}
    for log in logs:
        rankers = [ranker for _, _, ranker in log]
        first_v2 = rankers.index(f"rrf:v{v2.id}")
        assert rankers[0] == f"rrf:v{v1.id}"
        assert set(rankers[first_v2:]) == {f"rrf:v{v2.id}"}  # once swapped, never back
        assert log[first_v2][0] - activated < 5.0
    assert searcher_state().version_id == v2.id
