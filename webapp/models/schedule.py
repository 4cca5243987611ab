"""When each Celery beat schedule last ran, and when beat itself last started (the admin reads it)."""

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db


class ScheduleRun(db.Model):
    """One row per beat schedule entry (and one named BEAT_ROW for beat's own start): the latest run."""

    __tablename__ = "schedule_runs"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_run_at: Mapped[datetime] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(500), default="")
    runs: Mapped[int] = mapped_column(Integer, default=0)
