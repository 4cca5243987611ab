"""A real Celery worker on a real Redis broker runs a catalog import job end to end:
the web side records the job and enqueues by name, the worker writes progress and the result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from webapp import create_app
from webapp.extensions import db
from webapp.models import Job, Product
from webapp.services.jobs import start_job

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("KAIROS_TEST_BROKER_URL", "redis://127.0.0.1:6379/5")
WAIT_SECONDS = 60


def _redis_or_skip(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {url} ({exc}); scripts/test.sh starts it")
    # A fresh queue: a message left by an interrupted earlier run must not be consumed here.
    client.flushdb()


def _catalog(path: Path) -> Path:
    lines = [
        json.dumps(
            {
                "external_id": f"W{n}",
                "title": f"Cotton kitchen towel {n}",
                "brand": "Acme",
                "price": 4.5 + n,
                "rating": 4.2,
                "rating_count": 10 * n,
            }
        )
        for n in range(1, 4)
    ]
    lines.insert(2, '{"external_id": "BROKEN", "title": ')  # line 3: truncated JSON
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def database_url(tmp_path) -> str:
    # A file both processes open; on the PostgreSQL pass, the shared test database.
    return os.environ.get("KAIROS_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'worker.db'}"


@pytest.fixture
def worker_app(tmp_path, database_url):
    _redis_or_skip(BROKER)
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "INSTANCE_DIR": str(tmp_path),
            "CELERY": {"broker_url": BROKER, "result_backend": BROKER},
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        yield app
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def worker(worker_app, tmp_path, database_url):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "KAIROS_INSTANCE_DIR": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    log = (tmp_path / "worker.log").open("w")
    # prefork, as in production: the child is forked after the app is built (worker_process_init).
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "worker.celery_app",
            "worker",
            "-Q",
            "inference,training",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    # Its own session, so the whole group (main process and pool child) goes, even on failure.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass
    log.close()


def _wait_for_job(job_id: int, proc: subprocess.Popen, log_path: Path) -> Job:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        if job.status in ("succeeded", "failed"):
            return job
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.25)
    pytest.fail(f"job {job_id} still {job.status} after {WAIT_SECONDS}s:\n{log_path.read_text()[-3000:]}")


def test_worker_runs_catalog_import_job(worker_app, worker, tmp_path):
    path = _catalog(tmp_path / "catalog.ndjson")
    job = start_job("catalog_import", "catalog.import_file", {"path": str(path)})
    assert job.status == "queued" and job.celery_task_id

    job = _wait_for_job(job.id, worker, tmp_path / "worker.log")

    assert job.status == "succeeded", job.error
    assert job.progress == 1.0
    assert job.started_at is not None and job.finished_at >= job.started_at
    assert job.result["created"] == 3
    assert [e["line"] for e in job.result["errors"]] == [3]
    assert "invalid JSON" in job.result["errors"][0]["error"]
    titles = db.session.scalars(select(Product.title).order_by(Product.external_id)).all()
    assert titles == ["Cotton kitchen towel 1", "Cotton kitchen towel 2", "Cotton kitchen towel 3"]
    assert db.session.scalar(select(func.count()).select_from(Product).where(Product.external_id == "BROKEN")) == 0
