"""/api/health as readiness: which version this worker serves, since when, and 503 when it cannot."""

from __future__ import annotations

import time
from pathlib import Path

from engine.modeling.export import FP32_FILE
from tests.unit.test_serving_version import ready_version
from webapp.services.model_versions import activate_version
from webapp.services.search_index import searcher_state
from webapp.services.serving_follower import start_follower, stop_follower
from webapp.services.serving_version import follow_active_version, warm_up

TITLES = ["red running shoes", "blue rain jacket", "green garden gloves"]


def test_health_without_a_model(client):
    response = client.get("/api/health")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "ok" and body["active_version_id"] is None
    assert body["worker"]["version_id"] is None and body["worker"]["follower"] is False


def test_a_worker_that_cannot_load_the_active_version_is_not_ready(app, client, make_product, tiny_model):
    catalog = [make_product(title=t) for t in TITLES]
    good = ready_version(catalog)
    activate_version(good.id)
    warm_up()
    before = client.get("/api/health").get_json()
    assert before["status"] == "ok" and before["worker"]["version_id"] == good.id
    broken = ready_version(catalog)
    activate_version(broken.id)
    assert client.get("/api/health").get_json()["status"] == "loading"  # not swapped yet: still ready
    (Path(broken.artifact_path) / FP32_FILE).unlink()
    follow_active_version(wait=True)
    response = client.get("/api/health")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "unready"
    assert body["active_version_id"] == broken.id and body["worker"]["version_id"] == good.id
    assert "cannot load" not in response.get_data(as_text=True)  # the reason is logged, not published
    assert broken.id in searcher_state().failed_versions


def test_health_shows_every_worker_and_when_it_swapped(app, client, make_product, tiny_model):
    catalog = [make_product(title=t) for t in TITLES]
    app.config.update(SERVING_FOLLOW_SECONDS=0.02, VERSION_CHECK_SECONDS=0.0)
    start_follower(app)
    try:
        version = ready_version(catalog)
        activated = time.time()
        activate_version(version.id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = client.get("/api/health").get_json()
            if body["workers"] and body["workers"][0]["version_id"] == version.id:
                break
            time.sleep(0.05)
        (card,) = body["workers"]
        assert card["version_id"] == version.id and card["serving_since"] >= activated - 1
        assert body["worker"]["version_id"] == version.id and body["worker"]["follower"] is True
        assert body["status"] == "ok" and body["worker"]["snapshot_age_s"] < 5
    finally:
        stop_follower(app)
