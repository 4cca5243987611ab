"""Model versions and jobs in the admin (webapp.admin.models, webapp.admin.jobs,
webapp.services.model_admin). Enqueueing is observed on a patched send_task: no broker,
no eager mode."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import pytest
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import select

from tests.unit.serving_fixtures import build_version_dir, card
from webapp.extensions import db
from webapp.models import Job, ModelVersion, utcnow
from webapp.services.model_versions import create_version

METRICS = {
    "validation_ndcg10_lexical": 0.3012,
    "validation_ndcg10_dense": 0.35,
    "validation_ndcg10_rrf": 0.37,
    "validation_ndcg10_hybrid": 0.38127,
    "validation_queries": 22,
    "served_pipeline": "ranker",
    "serve_variant": "int8",
    "int8_relative_drop": 0.004,
    "test_ndcg10_hybrid": 0.9876,  # an older build's test figure: never shown where versions are chosen
    "gate": {"passed": True, "difference": 0.0123, "low": -0.0045, "high": 0.0301, "queries": 22, "margin": 0.01},
}


@pytest.fixture
def send_task(app):
    """The Celery app's send_task, recorded; each call returns a fresh task id."""
    ids = iter(f"task-{n}" for n in range(1, 100))
    with mock.patch.object(
        app.extensions["celery"], "send_task", side_effect=lambda *a, **k: SimpleNamespace(id=next(ids))
    ) as patched:
        yield patched


def version(status: str = "ready", name: str = "v", **fields) -> ModelVersion:
    row = ModelVersion(name=name, status=status, retrieval_mode=fields.pop("retrieval_mode", "hybrid"), **fields)
    db.session.add(row)
    db.session.commit()
    return row


def loadable_version(name: str) -> ModelVersion:
    """A ready version whose artifacts really load (tiny random encoder)."""
    row = create_version(name)
    build_version_dir(row.artifact_path, [card(1, "red running shoes"), card(2, "blue rain jacket")])
    row.status = "ready"
    db.session.commit()
    return row


def jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.scalars(select(Job).order_by(Job.id)))


def flashes(client, url: str = "/admin/models") -> str:
    return client.get(url).get_data(as_text=True)


def test_versions_page_shows_status_mode_metrics_and_serving(client, login):
    login("analyst")
    version("retired", "zero-shot", metrics={"validation_ndcg10_lexical": 0.3})
    version("active", "fine-tuned", metrics=METRICS, activated_at=utcnow(), retrieval_mode="rrf", parent_id=1)
    page = client.get("/admin/models").get_data(as_text=True)
    assert "v2" in page and "fine-tuned" in page and "from v1" in page and "rrf" in page
    assert "0.3813" in page and "0.3012" in page and "int8" in page and "0.0040" in page
    assert "Validation NDCG@10" in page and "Test NDCG" not in page and "0.9876" not in page
    assert "passed" in page and "+0.0123 [-0.0045, +0.0301], 22 queries, margin 0.01" in page and "ranker" in page
    assert "st-active" in page and "st-retired" in page
    assert "The web worker that answered this page serves <code>lexical</code>" in page
    assert "<code>rrf:v2</code>" in page and "<code>rrf:v1</code>" in page  # no ranker.json: RRF serves


def test_one_name_for_what_serves_on_the_overview_the_models_page_and_the_api(client, login, tiny_model):
    from webapp.services.model_versions import activate_version
    from webapp.services.serving_version import follow_active_version

    login("admin")
    hybrid = loadable_version("zero-shot")  # hybrid, and the tiny build keeps no learned ranker
    assert hybrid.retrieval_mode == "hybrid"
    activate_version(hybrid.id)
    follow_active_version(wait=True)
    ranker = client.get("/api/search?q=red+running+shoes").get_json()["ranker"]
    assert ranker == f"rrf:v{hybrid.id}"
    overview = client.get("/admin/").get_data(as_text=True)
    models_page = client.get("/admin/models").get_data(as_text=True)
    assert f"this worker serves <code>{ranker}</code>" in overview and "hybrid" not in overview
    assert f"serves <code>{ranker}</code>" in models_page and f"serving as <code>{ranker}</code>" in models_page
    assert "(hybrid, no learned ranker kept)" in models_page


def test_activate_and_roll_back_from_the_buttons(client, login, tiny_model):
    login("admin")
    first, second = loadable_version("one"), loadable_version("two")
    response = client.post(f"/admin/models/{first.id}/activate", follow_redirects=True)
    assert f"Version {first.id} is active" in response.get_data(as_text=True)
    client.post(f"/admin/models/{second.id}/activate")
    db.session.expire_all()
    assert (db.session.get(ModelVersion, first.id).status, db.session.get(ModelVersion, second.id).status) == (
        "retired",
        "active",
    )
    response = client.post("/admin/models/rollback", follow_redirects=True)
    assert f"Rolled back: version {first.id} is active." in response.get_data(as_text=True)


def test_refusals_are_shown_as_errors(client, login):
    login("admin")
    broken = version("ready", "never built", artifact_path="/nonexistent/v1")
    building = version("building", "half done")
    page = client.post(f"/admin/models/{broken.id}/activate", follow_redirects=True).get_data(as_text=True)
    assert "flash-error" in page and f"version {broken.id} cannot serve" in page
    page = client.post(f"/admin/models/{building.id}/activate", follow_redirects=True).get_data(as_text=True)
    assert f"version {building.id} is building; only ready or retired versions can serve" in page
    page = client.post("/admin/models/rollback", follow_redirects=True).get_data(as_text=True)
    assert "there is no earlier version to roll back to" in page
    page = client.post("/admin/models/999/activate", follow_redirects=True).get_data(as_text=True)
    assert "no model version 999" in page


def test_retrain_enqueues_a_fine_tune_of_the_active_version(client, login, send_task):
    login("admin")
    active = version("active", "serving", activated_at=utcnow())
    response = client.post("/admin/models/retrain")
    [job] = jobs()
    assert (job.kind, job.status, job.params, job.celery_task_id) == (
        "fine_tune",
        "queued",
        {"parent_version_id": active.id},
        "task-1",
    )
    send_task.assert_called_once_with("training.fine_tune", args=[job.id], ignore_result=True)
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/jobs/{job.id}"
    again = client.post("/admin/models/retrain", follow_redirects=True).get_data(as_text=True)
    assert f"a retrain is already queued as job {job.id}" in again and send_task.call_count == 1


def test_the_models_page_says_what_a_retrain_needs(client, login):
    login("admin")
    page = client.get("/admin/models").get_data(as_text=True)
    assert "Retrain needs at least 50 positive (query, product) pairs" in page and "last 30 days" in page
    assert "flask --app webapp simulate --base-url http://localhost --sessions 500" in page


def test_retrain_needs_an_active_version(client, login, send_task):
    login("admin")
    page = client.post("/admin/models/retrain", follow_redirects=True).get_data(as_text=True)
    assert "no model version is active" in page and jobs() == [] and not send_task.called


def test_a_stale_queued_job_does_not_block_a_new_retrain(client, login, send_task):
    login("admin")
    version("active", "serving", activated_at=utcnow())
    db.session.add(Job(kind="fine_tune", status="queued", created_at=utcnow() - timedelta(hours=7)))
    db.session.commit()
    client.post("/admin/models/retrain")
    stale, new = jobs()
    assert new.status == "queued" and send_task.call_count == 1
    assert stale.status == "failed" and stale.error.startswith("worker lost")


def test_rebuild_creates_a_child_version_and_enqueues_its_build(client, login, send_task):
    login("admin")
    active = version("active", "serving", activated_at=utcnow(), retrieval_mode="rrf")
    response = client.post("/admin/models/rebuild")
    child = db.session.scalar(select(ModelVersion).where(ModelVersion.parent_id == active.id))
    assert child.status == "building" and child.retrieval_mode == "rrf" and child.artifact_path.endswith(f"v{child.id}")
    [job] = jobs()
    assert (job.kind, job.params) == ("build_version", {"version_id": child.id})
    send_task.assert_called_once_with("inference.build_version", args=[job.id], ignore_result=True)
    assert response.headers["Location"] == f"/admin/jobs/{job.id}"


def test_an_unreachable_broker_fails_the_job_instead_of_leaving_it_queued(app, client, login):
    login("admin")
    active = version("active", "serving", activated_at=utcnow())
    with mock.patch.object(app.extensions["celery"], "send_task", side_effect=BrokerUnavailable("connection refused")):
        page = client.post("/admin/models/rebuild", follow_redirects=True).get_data(as_text=True)
    assert "the job queue cannot be reached" in page
    [job] = jobs()
    assert job.status == "failed" and "connection refused" in job.error
    child = db.session.scalar(select(ModelVersion).where(ModelVersion.parent_id == active.id))
    assert child.status == "failed"


def test_analysts_cannot_start_jobs(client, login, send_task):
    login("analyst")
    version("active", "serving", activated_at=utcnow())
    for url in ("/admin/models/retrain", "/admin/models/rebuild", "/admin/models/rollback"):
        assert client.post(url).status_code == 403
    assert jobs() == [] and not send_task.called


def test_jobs_list_filters_by_kind_and_status(client, login):
    login("analyst")
    db.session.add_all(
        [
            Job(kind="fine_tune", status="running", progress=0.5, message="epoch 2 of 4"),
            Job(kind="build_version", status="failed", error="ValueError: no products"),
            Job(kind="catalog_import", status="succeeded", progress=1.0),
        ]
    )
    db.session.commit()
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "epoch 2 of 4" in page and "ValueError: no products" in page and "3 in all" in page
    only = client.get("/admin/jobs?kind=fine_tune").get_data(as_text=True)
    assert "epoch 2 of 4" in only and "no products" not in only
    failed = client.get("/admin/jobs?status=failed").get_data(as_text=True)
    assert "no products" in failed and "epoch 2" not in failed


def test_job_page_and_its_json_for_live_progress(client, login):
    login("analyst")
    job = Job(
        kind="fine_tune",
        status="running",
        progress=0.25,
        message="step 50 of 200",
        params={"parent_version_id": 3},
        result={"loss": 0.41, "logs": ["loaded 1200 events", "epoch 1 done"]},
        started_at=utcnow(),
    )
    db.session.add(job)
    db.session.commit()
    page = client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert f'data-poll-url="/admin/jobs/{job.id}.json"' in page and 'data-done="false"' in page
    assert "step 50 of 200" in page and "epoch 1 done" in page and "js/admin_job.js" in page
    assert all('src="' in tag for tag in re.findall(r"<script\b[^>]*>", page))  # no inline script
    state = client.get(f"/admin/jobs/{job.id}.json")
    assert state.headers["Cache-Control"] == "no-store"
    body = state.get_json()
    assert body["status"] == "running" and body["progress"] == 0.25 and body["done"] is False
    assert body["logs"] == ["loaded 1200 events", "epoch 1 done"] and body["result"] == {"loss": 0.41}
    job.status, job.progress, job.error = "failed", 0.3, "RuntimeError: out of memory"
    db.session.commit()
    body = client.get(f"/admin/jobs/{job.id}.json").get_json()
    assert body["done"] is True and body["error"] == "RuntimeError: out of memory"
    assert client.get("/admin/jobs/999.json").status_code == 404
    assert client.get("/admin/jobs/999").status_code == 404


def test_static_scripts_exist(client):
    for name in ("admin_base.js", "admin_charts.js", "admin_job.js"):
        assert client.get(f"/static/js/{name}").status_code == 200
    assert client.get("/static/css/admin.css").status_code == 200
