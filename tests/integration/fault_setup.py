"""What the fault tests share: a small catalog file, an app on the test's database, and the
environment of a gunicorn or Celery process on the same database and broker."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from webapp import create_app
from webapp.extensions import db
from webapp.services.catalog_import import import_catalog
from webapp.services.impression_flush import stop_impression_writer

NO_LIMITS = {"KAIROS_SEARCH_RATE_LIMIT": "100000 per minute", "KAIROS_EVENTS_RATE_LIMIT": "100000 per minute"}
NO_LIMITS["KAIROS_IP_RATE_LIMIT"] = "100000 per minute"  # the limiter still runs (and reaches its store)


def write_catalog(path: Path, n: int = 40) -> Path:
    """A JSON-lines catalog of n towels (T0..T{n-1}) that every shopper's query finds."""
    colours = ["blue", "white", "grey", "green"]
    rows = [
        {"external_id": f"T{i}", "title": f"{colours[i % 4]} cotton bath towel {i}", "brand": "Acme", "price": 5 + i}
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def make_app(tmp_path: Path, database_url: str, broker: str = "memory://"):
    """The test's own app on the database the servers use (to set it up and read it back)."""
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "INSTANCE_DIR": str(tmp_path),
            "CELERY": {"broker_url": broker, "result_backend": broker if broker.startswith("redis") else None},
        }
    )


@contextmanager
def shop_database(app, tmp_path: Path) -> Iterator[None]:
    """Inside the app's context: its database fresh, with the small catalog; dropped on the way out."""
    with app.app_context():
        db.drop_all()
        db.create_all()
        import_catalog(write_catalog(tmp_path / "catalog.jsonl"))
        try:
            yield
        finally:
            stop_impression_writer(app)  # its writer thread must not outlive the tables
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def server_env(tmp_path: Path, database_url: str, broker: str, **extra: str) -> dict[str, str]:
    """A gunicorn or Celery process's environment: this test's database, broker and folder, no limits."""
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


def count(model) -> int:
    """Rows in a model's table as the database has them now (not this session's cache)."""
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def count_when_stored(model, expected: int, seconds: float = 10.0) -> int:
    """Rows in a model's table once they reach `expected` or the time is up; the searches a server
    answered are stored by its search log a moment after their responses (webapp.services.search_log)."""
    deadline = time.monotonic() + seconds
    found = count(model)
    while found < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        found = count(model)
    return found
