"""Model version lifecycle: create, activate (only if its artifacts load), roll back."""

from __future__ import annotations

from pathlib import Path

from flask import current_app
from sqlalchemy import select

from engine.serving.bundle import BundleError, load_bundle
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import ModelVersion, utcnow
from webapp.services.version_quality import quality_refusal


def versions_dir() -> Path:
    """Where version artifact directories live (one per version, named v<id>)."""
    path = Path(current_app.config["INSTANCE_DIR"]) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def active_version() -> ModelVersion | None:
    """The version serving all traffic, if any."""
    return db.session.scalar(select(ModelVersion).where(ModelVersion.status == "active"))


def create_version(name: str, retrieval_mode: str = "hybrid", parent_id: int | None = None) -> ModelVersion:
    """Record a new version in 'building' with its artifact directory reserved."""
    version = ModelVersion(name=name, status="building", retrieval_mode=retrieval_mode, parent_id=parent_id)
    db.session.add(version)
    db.session.flush()
    version.artifact_path = str(versions_dir() / f"v{version.id}")
    db.session.commit()
    return version


def activate_version(version_id: int) -> ModelVersion:
    """Make a ready (or retired) version serve all traffic; the previous one is retired.

    The artifacts are loaded once here first (their checksums verified): a missing, corrupt
    or changed directory is refused with a clear error and the current version keeps serving;
    so is one whose quick quality check falls clearly below its build figure
    (webapp.services.version_quality).
    """
    version = db.session.get(ModelVersion, version_id)
    if version is None:
        raise InputError(f"no model version {version_id}")
    if version.status == "active":
        return version
    if version.status not in ("ready", "retired"):
        raise InputError(f"version {version_id} is {version.status}; only ready or retired versions can serve")
    try:
        bundle = load_bundle(version.artifact_path, version.id, retrieval_mode=version.retrieval_mode)
    except BundleError as exc:
        raise InputError(f"version {version_id} cannot serve: {exc}") from None
    refusal = quality_refusal(version, bundle)
    if refusal is not None:
        raise InputError(f"version {version_id} was not activated: {refusal}")
    try:
        for current in db.session.scalars(select(ModelVersion).where(ModelVersion.status == "active")):
            current.status = "retired"
        version.status, version.activated_at = "active", utcnow()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return version


def rollback_version() -> ModelVersion:
    """Re-activate the version that served before the current one."""
    current = active_version()
    stmt = select(ModelVersion).where(ModelVersion.status == "retired", ModelVersion.activated_at.is_not(None))
    if current is not None:
        stmt = stmt.where(ModelVersion.id != current.id)
    previous = db.session.scalar(stmt.order_by(ModelVersion.activated_at.desc()))
    if previous is None:
        raise InputError("there is no earlier version to roll back to")
    return activate_version(previous.id)


def mark_failed(version_id: int, reason: str) -> None:
    """Record that a version will never serve, with the reason (shown by `model list` and the admin)."""
    version = db.session.get(ModelVersion, version_id)
    if version is not None and version.status == "building":
        version.status, version.metrics = "failed", {**(version.metrics or {}), "error": reason[:2000]}
        db.session.commit()
