"""A real Celery worker on a real Redis broker runs a catalog import job end to end:
the web side records the job and enqueues by name, the worker writes progress and the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.integration.conftest import wait_for_job
from webapp.extensions import db
from webapp.models import Product
from webapp.services.jobs import start_job

pytestmark = pytest.mark.integration


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


def test_worker_runs_catalog_import_job(worker_app, worker, tmp_path):
    path = _catalog(tmp_path / "catalog.ndjson")
    job = start_job("catalog_import", "catalog.import_file", {"path": str(path)})
    assert job.status == "queued" and job.celery_task_id

    job = wait_for_job(job.id, worker, tmp_path / "worker.log")

    assert job.status == "succeeded", job.error
    assert job.progress == 1.0
    assert job.started_at is not None and job.finished_at >= job.started_at
    assert job.result["created"] == 3
    assert [e["line"] for e in job.result["errors"]] == [3]
    assert "invalid JSON" in job.result["errors"][0]["error"]
    titles = db.session.scalars(select(Product.title).order_by(Product.external_id)).all()
    assert titles == ["Cotton kitchen towel 1", "Cotton kitchen towel 2", "Cotton kitchen towel 3"]
    assert db.session.scalar(select(func.count()).select_from(Product).where(Product.external_id == "BROKEN")) == 0
