"""Model versions and background jobs (filled by the learning issues; the admin reads them)."""

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow

MODEL_STATUSES = ("building", "ready", "active", "retired", "failed")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "refused")  # refused: declined, nothing broke


class ModelVersion(db.Model):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="building", index=True)
    retrieval_mode: Mapped[str] = mapped_column(String(20), default="hybrid")
    artifact_path: Mapped[str] = mapped_column(String(500), default="")
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)


class Job(db.Model):
    """A background task's state; the task writes it, the admin and the CLI read it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    celery_task_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Touched by the task each time it reports progress; a running job silent for longer than
    # its kind's time limit has lost its worker (webapp.services.jobs).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
