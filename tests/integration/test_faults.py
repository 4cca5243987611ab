"""Faults injected into real processes while shoppers search and click through real gunicorn:
Redis killed and restarted, a Celery worker's pool child killed mid-embedding, the database
refusing connections, and a model version's artifacts corrupted on disk. Each test is bounded
(about 10 to 60 seconds; the worker one loads the real MiniLM and is marked slow)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from itertools import islice
from pathlib import Path

import psycopg
import pytest
import requests
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import func, select, update

from engine.catalog.readers import read_catalog
from tests.integration.conftest import wait_for_job
from tests.integration.processes import RedisServer, Shoppers, between, children, serve, start_worker, stop_group
from webapp import create_app
from webapp.extensions import db
from webapp.models import Event, Job, ModelVersion, Product, SearchQuery
from webapp.services.admin_users import create_admin
from webapp.services.catalog_import import import_catalog
from webapp.services.jobs import start_job
from webapp.services.model_versions import create_version

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("KAIROS_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
NO_LIMITS = {"KAIROS_SEARCH_RATE_LIMIT": "100000 per minute", "KAIROS_EVENTS_RATE_LIMIT": "100000 per minute"}
NO_LIMITS["KAIROS_IP_RATE_LIMIT"] = "100000 per minute"  # the limiter still runs (and reaches its store)


def write_catalog(path: Path, n: int = 40) -> Path:
    colours = ["blue", "white", "grey", "green"]
    rows = [
        {"external_id": f"T{i}", "title": f"{colours[i % 4]} cotton bath towel {i}", "brand": "Acme", "price": 5 + i}
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def make_app(tmp_path: Path, database_url: str, broker: str = "memory://"):
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "INSTANCE_DIR": str(tmp_path),
            "CELERY": {"broker_url": broker, "result_backend": broker if broker.startswith("redis") else None},
        }
    )


def server_env(tmp_path: Path, database_url: str, broker: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "CELERY_", "RATELIMIT_"))}
    env.update(NO_LIMITS)
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker if broker.startswith("redis") else "cache+memory://",
        KAIROS_INSTANCE_DIR=str(tmp_path),
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="4",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def database_url(tmp_path) -> str:
    return os.environ.get("KAIROS_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'faults.db'}"


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


# (a) Redis goes away: the web path never needs it; queued work survives and runs when it is back.


def test_redis_killed_while_shoppers_search_and_click(tmp_path, database_url):
    redis = RedisServer(tmp_path / "redis").start()  # append-only file on, as docs/operations.md asks
    app = make_app(tmp_path, database_url, broker=redis.url(0))
    env = server_env(tmp_path, database_url, redis.url(0), RATELIMIT_STORAGE_URI=redis.url(1))
    server = worker = None
    with app.app_context():
        db.drop_all()
        db.create_all()
        import_catalog(write_catalog(tmp_path / "catalog.jsonl"))
        try:
            server = serve(env)
            shoppers = Shoppers(server.base).start()
            time.sleep(2)
            # Sent before the crash, with no worker up yet: the message must outlive Redis.
            queued = start_job(
                "catalog_import", "catalog.import_file", {"path": str(write_catalog(tmp_path / "b.jsonl", 5))}
            )
            redis.kill()
            down_from = time.monotonic()
            time.sleep(1)
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                start_job("catalog_import", "catalog.import_file", {"path": str(tmp_path / "b.jsonl")})
            enqueue_seconds = time.monotonic() - started
            time.sleep(max(0.0, 4 - (time.monotonic() - down_from)))
            redis.start()  # same port and folder: the append-only file brings the queue back
            down_to = time.monotonic()
            time.sleep(2)
            outcomes = shoppers.stop()

            failed = [o for o in outcomes if o.status not in (200, 201)]
            assert failed == [], failed[:5]
            during = between(outcomes, down_from, down_to)
            assert sum(o.kind == "search" for o in during) >= 10 and sum(o.kind == "click" for o in during) >= 5
            assert max(o.seconds for o in outcomes) < 2.0, "a request waited on the dead Redis"
            # Database first: every answered search was logged and every acknowledged click stored.
            assert count(Event) == sum(o.kind == "click" for o in outcomes)
            assert count(SearchQuery) == sum(o.kind == "search" for o in outcomes)
            # Enqueueing while Redis is down fails within seconds, on the job row too.
            assert enqueue_seconds < 15
            refused = db.session.scalars(select(Job).where(Job.id != queued.id)).one()
            assert refused.status == "failed" and "could not enqueue" in refused.error

            worker = start_worker(env, tmp_path / "worker.log")
            assert wait_for_job(queued.id, worker, tmp_path / "worker.log").status == "succeeded"
            again = start_job("catalog_import", "catalog.import_file", {"path": str(tmp_path / "b.jsonl")})
            assert wait_for_job(again.id, worker, tmp_path / "worker.log").status == "succeeded"
            assert count(Product) == 40  # b.jsonl holds T0..T4 again: updated in place
        finally:
            for proc in (worker,):
                if proc is not None:
                    stop_group(proc)
            if server is not None:
                server.stop()
            redis.kill()
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


# (c) The database restarts: requests fail fast with 503 and recover with the same server.


@pytest.fixture
def private_pg_database():
    """A PostgreSQL database of this test's own, so connections to it can be refused and cut."""
    name = f"kairos_fault_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_SERVER} ({exc})")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin, name
    finally:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_database_outage_answers_503_fast_and_recovers_without_restart(tmp_path, private_pg_database):
    admin, name = private_pg_database
    url = f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    app = make_app(tmp_path, url)
    with app.app_context():
        db.create_all()
        import_catalog(write_catalog(tmp_path / "catalog.jsonl"))
        db.session.remove()
        db.engine.dispose()
    server = serve(server_env(tmp_path, url, "memory://"))
    try:
        shoppers = Shoppers(server.base).start()
        time.sleep(2)
        # A restart as clients see it: live connections cut, new ones refused for a while.
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        down_from = time.monotonic()
        time.sleep(4)
        up_at = time.monotonic()  # read before, so no request of the outage window starts after it
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        time.sleep(4)
        outcomes = shoppers.stop()
    finally:
        server.stop()

    assert all(o.status for o in outcomes), "a request got no HTTP answer"
    assert not [o for o in outcomes if o.status >= 500 and o.status != 503], "only 503 while the database is away"
    outage = [o for o in between(outcomes, down_from + 0.5, up_at) if o.kind == "search"]
    # A connection that raced the cut may still answer; what must not happen is anything but 2xx or 503.
    assert len(outage) >= 20 and sum(o.status == 503 for o in outage) >= 0.9 * len(outage), outage[:5]
    assert all(o.status in (200, 503) for o in outage), [o for o in outage if o.status not in (200, 503)][:5]
    assert max(o.seconds for o in outcomes if o.status == 503) < 1.0, "a 503 must come fast"
    assert "briefly unavailable" in next(o.detail for o in outcomes if o.status == 503)
    recovered = between(outcomes, up_at + 2, float("inf"))
    assert recovered and all(o.status in (200, 201) for o in recovered)
    log = server.log.read_text()
    assert log.count("Booting worker") == 1, "the web worker restarted"


# (d) A version's artifacts corrupted on disk: the last good version keeps serving, the admin says why.


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
                assert f"v{v2.id} failed to load here" in page and "cannot load" in page
                assert f"from v{v1.id}" in page  # what this worker serves: still the good one
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
    assert not Path(db.session.get(ModelVersion, version.id).artifact_path).exists()  # nothing published

    job = wait_for_job(job.id, worker, tmp_path / "worker.log", seconds=300)
    assert job.status == "succeeded", job.error
    log = (tmp_path / "worker.log").read_text()
    assert "WorkerLostError" in log or "exited prematurely" in log
    db.session.expire_all()
    version = db.session.get(ModelVersion, version.id)
    assert version.status == "active" and version.metrics["products"] == 300
    assert (Path(version.artifact_path) / "manifest.json").is_file()

    # The next build on the same worker works.
    second = create_version("after the kill", retrieval_mode="rrf")
    job = start_job("build_version", "inference.build_version", {"version_id": second.id})
    assert wait_for_job(job.id, worker, tmp_path / "worker.log", seconds=300).status == "succeeded"
    db.session.expire_all()
    assert db.session.get(ModelVersion, second.id).status == "ready"
