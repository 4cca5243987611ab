"""Scheduled fine-tuning: the beat schedule, the check it runs, and the one-run-at-a-time lock.

Celery beat (`celery -A worker.celery_app beat`, one instance) sends
"training.schedule_fine_tune" every FINE_TUNE_INTERVAL_SECONDS; the check starts a
fine-tune of the active version only when FINE_TUNE_MIN_NEW_EVENTS feedback events
arrived since the last successful run and no run is queued or running. The lock then
guarantees that two runs (scheduled, admin, CLI) never overlap, even if both got queued.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import select, text

from webapp.extensions import db
from webapp.models import Job, utcnow
from webapp.services.feedback_export import events_since, last_successful_run
from webapp.services.jobs import job_in_flight, start_job
from webapp.services.model_versions import active_version
from webapp.services.schedule_runs import SCHEDULES, interval_seconds, outcome_line, record_run

LOCK_KEY = "kairos:lock:fine_tune"
ADVISORY_KEY = 0x4B41_4952  # "KAIR": serialises the job-table check on PostgreSQL


def beat_schedule(config: dict) -> dict:
    """The beat entries for celery.conf.beat_schedule (webapp.services.schedule_runs.SCHEDULES)."""
    entries = {}
    for s in SCHEDULES:
        seconds = interval_seconds(s, config)
        # A check left queued past its interval is superseded by the next one (given at least a
        # minute: a busy worker still runs a short interval's check rather than discarding each).
        options: dict = {"expires": max(seconds, 60.0)}
        if s.task.startswith("training."):
            options["queue"] = "training"
        entries[s.name] = {"task": s.task, "schedule": seconds, "options": options}
    return entries


def run_scheduled(name: str, body: Callable[[], dict]) -> dict:
    """Run a beat task's body and record its run (outcome or error) for the admin overview."""
    try:
        result = body()
    except Exception as exc:
        db.session.rollback()
        record_run(name, f"failed: {type(exc).__name__}: {exc}")
        raise
    record_run(name, outcome_line(result))
    return result


def maybe_start_fine_tune() -> dict:
    """Start a fine-tune of the active version if enough new feedback arrived; says why not otherwise."""
    version = active_version()
    if version is None:
        return {"started": False, "reason": "no active model version"}
    busy = job_in_flight("fine_tune")
    if busy is not None:
        return {"started": False, "reason": f"fine-tune job {busy.id} is queued or running"}
    new = events_since(last_successful_run("fine_tune"))
    needed = int(current_app.config["FINE_TUNE_MIN_NEW_EVENTS"])
    if new < needed:
        return {"started": False, "reason": f"{new} new feedback events, {needed} needed"}
    job = start_job("fine_tune", "training.fine_tune", {"parent_version_id": version.id, "trigger": "schedule"})
    return {"started": True, "job_id": job.id, "new_events": new}


class TrainingLock:
    """Held by one fine-tune job at a time; acquire() returns None when taken, else the holder's job id."""

    def __init__(self, job_id: int, ttl_seconds: float) -> None:
        self.job_id = job_id
        self.ttl = ttl_seconds
        self.held = False

    def acquire(self) -> int | None:
        raise NotImplementedError

    def refresh(self) -> None:
        """Keep holding it (a live run calls this as it reports)."""

    def release(self) -> None:
        """Let the next run in."""


class RedisLock(TrainingLock):
    """SET NX with an expiry, refreshed while the run reports; compare-and-delete on release."""

    _REFRESH = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
    )
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, url: str, job_id: int, ttl_seconds: float) -> None:
        super().__init__(job_id, ttl_seconds)
        self.client = redis.Redis.from_url(url, socket_timeout=10)

    def acquire(self) -> int | None:
        for _ in range(3):  # the holder may release between our SET and GET
            if self.client.set(LOCK_KEY, str(self.job_id), nx=True, px=int(self.ttl * 1000)):
                self.held = True
                return None
            holder = self.client.get(LOCK_KEY)
            if holder is not None:
                return int(holder)
        return -1

    def refresh(self) -> None:
        if self.held:
            self.client.eval(self._REFRESH, 1, LOCK_KEY, str(self.job_id), int(self.ttl * 1000))

    def release(self) -> None:
        if self.held:
            self.client.eval(self._RELEASE, 1, LOCK_KEY, str(self.job_id))
            self.held = False


class DatabaseLock(TrainingLock):
    """The job table as the lock: in one transaction, refuse if another fine-tune job is running
    with a fresh heartbeat, else mark this one running. A dead run's heartbeat goes stale."""

    def _alive(self, job: Job, now: datetime) -> bool:
        beat = (job.result or {}).get("heartbeat")
        started = datetime.fromisoformat(beat) if beat else job.started_at
        return started is not None and now - started < timedelta(seconds=self.ttl)

    def acquire(self) -> int | None:
        try:
            if db.engine.dialect.name == "postgresql":
                db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY})
            now = utcnow()
            running = db.session.scalars(select(Job).where(Job.kind == "fine_tune", Job.status == "running"))
            for job in running:
                if self._alive(job, now):
                    db.session.rollback()
                    return job.id
            mine = db.session.get(Job, self.job_id)
            mine.status, mine.started_at = "running", mine.started_at or now
            mine.result = {**(mine.result or {}), "heartbeat": now.isoformat()}
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        self.held = True
        return None


def training_lock(job_id: int) -> TrainingLock:
    """The lock for this deployment: Redis when the broker is Redis, the job table otherwise."""
    broker = str(current_app.config["CELERY"].get("broker_url", ""))
    ttl = float(current_app.config["FINE_TUNE_LOCK_TTL_SECONDS"])
    if broker.startswith(("redis://", "rediss://")):
        return RedisLock(broker, job_id, ttl)
    return DatabaseLock(job_id, ttl)
