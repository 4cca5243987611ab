"""Experiment tasks: the beat's periodic snapshot of the running experiment (charts over time)."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy.exc import OperationalError


@shared_task(
    name="experiments.snapshot_running",
    soft_time_limit=300,
    time_limit=360,
    autoretry_for=(OperationalError,),  # the database blinking is transient
    retry_backoff=30,
    max_retries=3,
)
def snapshot_running() -> dict:
    """Store a metrics snapshot of every running experiment; returns the snapshot ids."""
    from webapp.services.experiment_snapshots import snapshot_running as take
    from worker.schedule import run_scheduled

    return run_scheduled("kairos-experiment-snapshots", lambda: {"snapshots": take()})
