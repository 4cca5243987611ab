"""The catalog.import_file task body: import, then queue embedding of what changed for the active version."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from webapp.extensions import db
from webapp.models import Job, ModelVersion, Product, utcnow
from webapp.services.catalog_import import import_catalog
from worker.tasks.catalog import import_file


@pytest.fixture
def sent(app, monkeypatch):
    """Tasks sent to the broker, by name and args."""
    calls: list[tuple[str, list]] = []

    def send_task(name, args=None, **_):
        calls.append((name, list(args or [])))
        return SimpleNamespace(id=f"task-{len(calls)}")

    monkeypatch.setattr(app.extensions["celery"], "send_task", send_task)
    return calls


@pytest.fixture
def active(app, tmp_path) -> ModelVersion:
    version = ModelVersion(name="v", status="active", retrieval_mode="hybrid", artifact_path=str(tmp_path / "v1"))
    db.session.add(version)
    db.session.commit()
    return version


def write(path, rows) -> str:
    path.write_text("\n".join(json.dumps({"external_id": e, "title": t}) for e, t in rows) + "\n", encoding="utf-8")
    return str(path)


def import_job(path: str) -> Job:
    job = Job(kind="catalog_import", status="queued", params={"path": path})
    db.session.add(job)
    db.session.commit()
    return job


def embed_jobs() -> list[Job]:
    db.session.expire_all()
    return db.session.scalars(select(Job).where(Job.kind == "embed_products").order_by(Job.id)).all()


def ids(*external_ids: str) -> list[int]:
    rows = db.session.scalars(select(Product.id).where(Product.external_id.in_(external_ids)).order_by(Product.id))
    return list(rows)


def test_changed_products_are_queued_for_the_active_version(app, sent, active, tmp_path):
    import_catalog(write(tmp_path / "first.jsonl", [("OLD", "untouched"), ("B", "before"), ("C", "same")]))
    db.session.execute(update(Product).values(updated_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    result = import_file(import_job(write(tmp_path / "a.jsonl", [("A", "new"), ("B", "after"), ("C", "same")])).id)

    [embed] = embed_jobs()
    assert (result["created"], result["updated"], result["unchanged"]) == (1, 1, 1)
    assert result["embed_job_id"] == embed.id and result["embed_products"] == 2
    assert embed.status == "queued" and embed.params == {"version_id": active.id, "product_ids": ids("A", "B")}
    assert sent == [("inference.embed_products", [embed.id])]

    import_file(import_job(write(tmp_path / "b.jsonl", [("A", "new"), ("C", "same")])).id)
    assert len(embed_jobs()) == 1  # nothing changed: nothing to embed


def test_a_rerun_still_finds_what_its_first_attempt_changed(app, sent, active, tmp_path):
    job = import_job(write(tmp_path / "a.jsonl", [("A", "new")]))
    job.status, job.result = "running", {"changed_since": utcnow().isoformat()}  # the first attempt began,
    import_catalog(job.params["path"])  # stored the product, then its worker died
    db.session.commit()
    result = import_file(job.id)
    assert result["unchanged"] == 1 and result["embed_products"] == 1
    assert embed_jobs()[0].params["product_ids"] == ids("A")


def test_without_an_active_version_nothing_is_queued(app, sent, tmp_path):
    result = import_file(import_job(write(tmp_path / "a.jsonl", [("A", "new")])).id)
    assert result["created"] == 1 and "embed_job_id" not in result
    assert embed_jobs() == [] and sent == []


def test_an_uploaded_file_is_deleted_when_its_import_ends_and_options_apply(app, sent, tmp_path, make_product):
    make_product(external_id="H", title="hidden", is_active=False)
    path = tmp_path / "upload.jsonl"
    path.write_text(json.dumps({"external_id": "H", "title": "hidden", "is_active": True}) + "\n")
    job = Job(kind="catalog_import", status="queued", params={"path": str(path), "delete_after": True})
    db.session.add(job)
    db.session.commit()
    result = import_file(job.id)
    assert result["kept_hidden"] == 1 and not path.exists()
    path.write_text(json.dumps({"external_id": "H", "title": "hidden", "is_active": True}) + "\n")
    job = Job(kind="catalog_import", status="queued", params={"path": str(path), "reactivate": True})
    db.session.add(job)
    db.session.commit()
    assert import_file(job.id)["updated"] == 1 and path.exists()
