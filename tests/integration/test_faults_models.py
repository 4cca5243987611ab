"""Faults in the model's files and the workers that write them: a model version's artifacts
corrupted on disk under a real gunicorn, and a Celery worker's pool child SIGKILLed in the
middle of a build. The corrupt-artifacts test takes about 15 seconds; the worker one loads the
real MiniLM (a few minutes) and is marked slow."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from itertools import islice
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from engine.catalog.readers import read_catalog
from tests.integration.conftest import wait_for_job
from tests.integration.fault_setup import make_app, server_env, write_catalog
from tests.integration.processes import children, serve
from webapp.extensions import db
from webapp.models import Job, ModelVersion, Product
from webapp.services.admin_users import create_admin
from webapp.services.catalog_import import import_catalog
from webapp.services.jobs import start_job
from webapp.services.model_versions import create_version

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


# (a) A version's artifacts corrupted on disk: the last good version keeps serving, the admin says why.


def _login(base: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/admin/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = session.post(f"{base}/admin/login", data={"email": email, "password": password, "csrf_token": token})
    assert answer.ok and "/admin/login" not in answer.url, answer.text[-500:]
    return session


def test_corrupt_artifacts_keep_the_last_good_version_serving(tmp_path, database_url):
    from tests.unit.serving_fixtures import build_version_dir  # torch, in the test process only
    from webapp.services.search_index import product_card

    app = make_app(tmp_path, database_url)
    env = server_env(tmp_path, database_url, "memory://", KAIROS_VERSION_CHECK_SECONDS="0.3")
    with app.app_context():
        db.drop_all()
        db.create_all()
        try:
            import_catalog(write_catalog(tmp_path / "catalog.jsonl"))
            cards = [product_card(p) for p in db.session.scalars(select(Product))]
            good = build_version_dir(tmp_path / "models" / "v-good", cards, retrieval_mode="rrf")
            bad = build_version_dir(tmp_path / "models" / "v-bad", cards, retrieval_mode="rrf")
            v1 = ModelVersion(name="good", status="active", retrieval_mode="rrf", artifact_path=str(good))
            v2 = ModelVersion(name="corrupted", status="ready", retrieval_mode="rrf", artifact_path=str(bad))
            db.session.add_all([v1, v2])
            db.session.commit()
            create_admin("ops@example.com", "a long enough password", "analyst")
            server = serve(env)
            try:
                search = f"{server.base}/api/search"
                assert requests.get(search, params={"q": "towel"}).json()["ranker"].endswith(f"v{v1.id}")
                (Path(bad) / "embeddings.npy").write_bytes(b"\0garbage")  # a disk error, a bad copy
                (Path(good) / "manifest.json").unlink()  # the served version's files vanish too
                db.session.execute(update(ModelVersion).where(ModelVersion.id == v1.id).values(status="retired"))
                db.session.execute(update(ModelVersion).where(ModelVersion.id == v2.id).values(status="active"))
                db.session.commit()
                deadline, page = time.monotonic() + 20, ""
                admin = _login(server.base, "ops@example.com", "a long enough password")
                while time.monotonic() < deadline and f"v{v2.id} failed to load here" not in page:
                    answer = requests.get(search, params={"q": "blue towel"}, timeout=10)
                    assert answer.status_code == 200 and answer.json()["ranker"].endswith(f"v{v1.id}")
                    page = admin.get(f"{server.base}/admin/models", timeout=10).text
                    time.sleep(0.2)
                assert f"v{v2.id} failed to load here" in page and "does not match the checksum" in page
                assert f"serves <code>rrf:v{v1.id}</code>" in page  # what this worker serves: still the good one
            finally:
                server.stop()
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


# (b) A worker's pool child SIGKILLed in the middle of batched inference.


def _demo_subset(path: Path, n: int) -> Path:
    records = (p.record for p in read_catalog(ROOT / "data" / "esci-us-sample" / "esci_us_ecommerce_shrunk.ndjson.zip"))
    rows = [{"external_id": r.external_id, **r.fields()} for r in islice(filter(None, records), n)]
    path.write_text("\n".join(json.dumps(r, default=str) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def worker_env() -> dict:
    # A lost pool child's task is retried after 1 s (30 s by default); no labelled queries to tune on.
    return {"KAIROS_WORKER_LOST_RETRY_SECONDS": "1", "KAIROS_RANKER_QRELS": ""}


@pytest.mark.slow
def test_a_worker_killed_mid_embedding_publishes_nothing_and_the_build_reruns(worker_app, worker, tmp_path):
    import_catalog(_demo_subset(tmp_path / "demo.jsonl", 300))
    worker_app.config["RANKER_QRELS"] = ""
    version = create_version("killed mid-build", retrieval_mode="rrf")
    job = start_job("build_version", "inference.build_version", {"version_id": version.id})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # until the embedding loop (15% to 85% of the job) is running
        db.session.expire_all()
        progress = db.session.get(Job, job.id).progress
        if 0.2 <= progress < 0.8:
            break
        assert worker.poll() is None and db.session.get(Job, job.id).status != "succeeded", "missed the window"
        time.sleep(0.05)
    else:
        pytest.fail(f"the build never reached the embedding step:\n{(tmp_path / 'worker.log').read_text()[-3000:]}")
    (child,) = children(worker.pid)
    os.kill(child, signal.SIGKILL)
    db.session.expire_all()
    assert db.session.get(ModelVersion, version.id).status == "building"
    target = Path(db.session.get(ModelVersion, version.id).artifact_path)
    assert not target.exists()  # nothing published
    (leftover,) = target.parent.glob(f".{target.name}.*.partial")  # SIGKILL: the build's own cleanup never ran

    job = wait_for_job(job.id, worker, tmp_path / "worker.log", seconds=300)
    assert job.status == "succeeded", job.error
    log = (tmp_path / "worker.log").read_text()
    assert "WorkerLostError" in log or "exited prematurely" in log
    db.session.expire_all()
    version = db.session.get(ModelVersion, version.id)
    assert version.status == "active" and version.metrics["products"] == 300
    assert (Path(version.artifact_path) / "manifest.json").is_file()
    # The re-run left nothing; the killed run's directory is too young to be known dead, so it stays.
    assert list(target.parent.glob(".*.partial")) == [leftover]

    # The next build on the same worker works, and removes the leftover once it is older than any
    # version-writing task may run (aged here by its mtime, as two days would).
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(leftover, (two_days_ago, two_days_ago))
    second = create_version("after the kill", retrieval_mode="rrf")
    job = start_job("build_version", "inference.build_version", {"version_id": second.id})
    assert wait_for_job(job.id, worker, tmp_path / "worker.log", seconds=300).status == "succeeded"
    db.session.expire_all()
    assert db.session.get(ModelVersion, second.id).status == "ready"
    assert not leftover.exists() and list(target.parent.glob(".*.partial")) == []
    assert f"removed {leftover}, left by a killed build" in (tmp_path / "worker.log").read_text()
