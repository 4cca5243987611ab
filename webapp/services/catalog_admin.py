"""Catalog management from the admin: list, create, edit, (de)activate, queue an upload's import.

Every change is numbered in the catalog change feed in its own transaction
(webapp.models.product_changes). That is all the web workers need: each one reads the
products saved after the last number it applied (webapp.services.search_index) into its
in-memory Searcher, whose apply_changes also embeds a new or reworded product in process
through the active version's ONNX product encoder, so the change is searchable by words
and by meaning in every worker within INDEX_SYNC_SECONDS.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import or_, select
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from engine.catalog.readers import CatalogFileError, check_catalog_file
from engine.catalog.records import RecordError, validate_record
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import PRODUCT_FIELDS, Job, Product, utcnow
from webapp.services.catalog_import import read_limits
from webapp.services.jobs import start_job

PER_PAGE = 50
STATUSES = ("all", "active", "inactive")
UPLOAD_SUFFIXES = (".ndjson", ".jsonl", ".json", ".csv", ".zip")
FORM_FIELDS = ("external_id", *PRODUCT_FIELDS)


def like_pattern(text: str, prefix: bool = False) -> str:
    """A LIKE pattern (escape character backslash) matching text anywhere, or at the start
    with prefix=True, with the user's % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%" if prefix else f"%{escaped}%"


def list_products(q: str = "", status: str = "all", page: int = 1, per_page: int = PER_PAGE) -> Pagination:
    """Products matching q in title, brand or external id; most recently changed first."""
    stmt = select(Product)
    q = q.strip()
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(
            or_(
                Product.title.ilike(pattern, escape="\\"),
                Product.brand.ilike(pattern, escape="\\"),
                Product.external_id.ilike(pattern, escape="\\"),
            )
        )
    if status == "active":
        stmt = stmt.where(Product.is_active)
    elif status == "inactive":
        stmt = stmt.where(~Product.is_active)
    stmt = stmt.order_by(Product.updated_at.desc(), Product.id.desc())
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False, count=True)


def get_product(product_id: int) -> Product | None:
    """One product by its database id, if it exists."""
    return db.session.get(Product, product_id)


def _existing(product_id: int) -> Product:
    product = get_product(product_id)
    if product is None:
        raise InputError(f"no product {product_id}")
    return product


def _record_fields(form: Mapping[str, str], external_id: str) -> dict:
    """Validate form input with the importer's own rules; the model fields to store."""
    doc = {name: form.get(name, "") for name in PRODUCT_FIELDS}
    doc["external_id"] = external_id
    try:
        record = validate_record(doc)
    except RecordError as exc:
        raise InputError(str(exc)) from None
    fields = record.fields()
    fields.pop("is_active")  # activity changes only through set_product_active
    return fields


def create_product(form: Mapping[str, str]) -> Product:
    """Add a product from the form; InputError for invalid fields or a taken external id."""
    external_id = form.get("external_id", "").strip()
    fields = _record_fields(form, external_id)
    if db.session.scalar(select(Product.id).where(Product.external_id == external_id)) is not None:
        raise InputError(f"a product with external id {external_id!r} already exists; edit it instead")
    now = utcnow()
    product = Product(external_id=external_id, is_active=True, created_at=now, listed_at=now, updated_at=now, **fields)
    db.session.add(product)
    db.session.commit()
    return product


def update_product(product_id: int, form: Mapping[str, str]) -> tuple[Product, bool]:
    """Save the form's fields on a product; returns it and whether anything changed."""
    product = _existing(product_id)
    fields = _record_fields(form, product.external_id)
    changed = {name: value for name, value in fields.items() if getattr(product, name) != value}
    if changed:
        for name, value in changed.items():
            setattr(product, name, value)
        product.updated_at = utcnow()
        db.session.commit()
    return product, bool(changed)


def set_product_active(product_id: int, active: bool) -> Product:
    """Show (active) or hide a product everywhere; hidden products leave every index."""
    product = _existing(product_id)
    if product.is_active != active:
        product.is_active = active
        product.updated_at = utcnow()
        db.session.commit()
    return product


def queue_upload(upload: FileStorage | None, reactivate: bool = False) -> Job:
    """Keep a file uploaded from the browser and queue its import (the catalog.import_file job).

    The browser's file name is only used for its suffix (which picks the format) and,
    sanitised, for display; the file goes under INSTANCE_DIR/uploads (shared with the
    workers, like the model artifacts) under a random name, and the job deletes it when done.
    What makes the whole file unreadable (its size, a zip bomb) is refused here at once.
    """
    raw_name = (upload.filename or "") if upload is not None else ""
    if upload is None or not raw_name:
        raise InputError("choose a catalog file to import")
    display = secure_filename(raw_name) or "upload"
    suffix = next((s for s in UPLOAD_SUFFIXES if raw_name.lower().endswith(s)), None)
    if suffix is None:
        raise InputError(f"{display}: the file must end in {', '.join(UPLOAD_SUFFIXES)}")
    folder = Path(current_app.config["INSTANCE_DIR"]) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / f"upload-{secrets.token_hex(8)}{suffix}"
    upload.save(stored)
    try:
        check_catalog_file(stored, read_limits(current_app.config))
    except CatalogFileError as exc:
        stored.unlink(missing_ok=True)
        raise InputError(str(exc).replace(str(stored), display).replace(stored.name, display)) from None
    params = {"path": str(stored), "filename": display, "reactivate": reactivate, "delete_after": True}
    try:
        return start_job("catalog_import", "catalog.import_file", params)
    except Exception:
        stored.unlink(missing_ok=True)  # no job will ever read it (start_job failed its row)
        raise


def import_job(job_id: int) -> Job | None:
    """A catalog import job, for its report page."""
    job = db.session.get(Job, job_id)
    return job if job is not None and job.kind == "catalog_import" else None
