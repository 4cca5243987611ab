"""Fixtures for integration tests: a real Redis broker and a real Celery worker process
sharing a database with the test (a SQLite file, or PostgreSQL on the second pass)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import drop_everything
from webapp import create_app
from webapp.extensions import db
from webapp.models import Job
from webapp.services.impression_flush import stop_impression_writer

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
        drop_everything()
        db.create_all()
        yield app
        stop_impression_writer(app)  # its writer thread must not outlive the tables
        db.session.remove()
        drop_everything()
        db.engine.dispose()


@pytest.fixture
def worker_env() -> dict:
    """Extra environment for the worker process; a test module may override this fixture."""
    return {}


@pytest.fixture
def worker(worker_app, tmp_path, database_url, worker_env):
    env = {
        **os.environ,
        **worker_env,
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


def wait_for_job(job_id: int, proc: subprocess.Popen, log_path: Path, seconds: float = WAIT_SECONDS) -> Job:
    """Poll the job row until it ends; fail with the worker's log if it dies or takes too long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        if job.status in ("succeeded", "failed"):
            return job
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.25)
    pytest.fail(f"job {job_id} still {job.status} after {seconds}s:\n{log_path.read_text()[-3000:]}")
