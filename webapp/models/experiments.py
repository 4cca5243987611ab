"""A/B experiments: variants (a model version and ranking configuration each), sticky
visitor assignments recorded at first exposure, and daily metric snapshots."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow

EXPERIMENT_STATUSES = ("draft", "running", "paused", "stopped")


class Experiment(db.Model):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    salt: Mapped[str] = mapped_column(String(64))  # hashing salt: assignments independent across experiments
    primary_metric: Mapped[str] = mapped_column(String(50), default="click_through_rate")
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    sequential: Mapped[bool] = mapped_column(Boolean, default=True)  # always-valid p-values for daily peeking
    winner_variant_id: Mapped[int | None] = mapped_column(ForeignKey("experiment_variants.id", use_alter=True))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)


class ExperimentVariant(db.Model):
    __tablename__ = "experiment_variants"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    traffic_share: Mapped[float] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))  # None: lexical
    ranking_config: Mapped[dict] = mapped_column(JSON, default=dict)  # e.g. {"retrieval_mode": "rrf"}


class ExperimentAssignment(db.Model):
    """A visitor's variant, recorded when they first search under the experiment (exposure)."""

    __tablename__ = "experiment_assignments"
    __table_args__ = (UniqueConstraint("experiment_id", "visitor_id", name="uq_experiment_assignments_visitor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("experiment_variants.id"), index=True)
    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors.id"), index=True)
    exposed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ExperimentSnapshot(db.Model):
    """Per-variant metrics and test results at a point in time, for charts over time."""

    __tablename__ = "experiment_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    taken_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
