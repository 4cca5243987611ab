"""The beat schedules (one definition for beat and the admin) and a record of when each ran.

Celery beat sends each entry's task every interval; the task records its run here (name,
time, a one-line outcome) in its own transaction, and beat records its own start under
BEAT_ROW. The admin overview then shows, per schedule, when it last ran and when it runs
next, and says so plainly when beat has never run against this database (scheduled
fine-tuning, stage-2 refits and experiment snapshots then never happen).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import ScheduleRun, utcnow

BEAT_ROW = "celery-beat"


@dataclass(frozen=True)
class Schedule:
    """One beat entry: its name, the task it sends, and the config key holding its interval."""

    name: str
    task: str
    interval_key: str
    default_seconds: float
    label: str


SCHEDULES = (
    Schedule(
        "kairos-scheduled-fine-tune",
        "training.schedule_fine_tune",
        "FINE_TUNE_INTERVAL_SECONDS",
        3600,
        "Fine-tune check (retrains when enough new feedback arrived)",
    ),
    Schedule(
        "kairos-experiment-snapshots",
        "experiments.snapshot_running",
        "EXPERIMENT_SNAPSHOT_SECONDS",
        3600,
        "A/B experiment snapshots (charts over time)",
    ),
    # Jobs whose worker died (a killed main process reports nothing) are failed as "worker lost".
    Schedule(
        "kairos-stale-jobs",
        "jobs.fail_stale",
        "JOBS_STALE_SWEEP_SECONDS",
        300,
        "Sweep of jobs whose worker was lost",
    ),
    Schedule(
        "kairos-context-fit",
        "ranking.fit_context",
        "CONTEXT_FIT_INTERVAL_SECONDS",
        900,
        "Stage-2 context ranker refit",
    ),
)


def interval_seconds(schedule: Schedule, config: dict) -> float:
    """The entry's interval from the app's configuration."""
    return float(config.get(schedule.interval_key, schedule.default_seconds))


def record_run(name: str, outcome: str) -> None:
    """Note that a schedule (or beat itself, BEAT_ROW) ran now, with a one-line outcome; commits."""
    row = db.session.get(ScheduleRun, name)
    if row is None:
        row = ScheduleRun(name=name, runs=0)
        db.session.add(row)
    row.last_run_at, row.outcome, row.runs = utcnow(), outcome[:500], (row.runs or 0) + 1
    db.session.commit()


def outcome_line(result: object) -> str:
    """A task's result dict as one short line for the overview ("started: False, reason: ...")."""
    if isinstance(result, dict):
        return ", ".join(f"{k}: {v}" for k, v in result.items() if not isinstance(v, dict | list))[:500]
    return str(result)[:500]


@dataclass(frozen=True)
class ScheduleStatus:
    """What the overview shows for one schedule."""

    name: str
    label: str
    interval: timedelta
    last_run_at: datetime | None
    outcome: str
    runs: int
    next_run_at: datetime | None
    overdue: bool


@dataclass(frozen=True)
class ScheduleOverview:
    beat_started_at: datetime | None
    schedules: list[ScheduleStatus]


def schedule_overview(config: dict) -> ScheduleOverview:
    """Each schedule's last and next run. Next is the last run plus the interval (beat's start plus
    the interval before the first run); overdue when that is more than an interval past."""
    rows = {r.name: r for r in db.session.scalars(select(ScheduleRun))}
    beat = rows.get(BEAT_ROW)
    beat_started = beat.last_run_at if beat else None
    now = utcnow()
    out = []
    for s in SCHEDULES:
        row = rows.get(s.name)
        interval = timedelta(seconds=interval_seconds(s, config))
        base = row.last_run_at if row else beat_started  # beat keeps each entry's last run across restarts
        nxt = base + interval if base else None
        if nxt is not None and beat_started is not None and nxt < beat_started:
            nxt = beat_started  # due while beat was stopped: it sends the task as it starts
        out.append(
            ScheduleStatus(
                name=s.name,
                label=s.label,
                interval=interval,
                last_run_at=row.last_run_at if row else None,
                outcome=row.outcome if row else "",
                runs=row.runs if row else 0,
                next_run_at=nxt,
                overdue=nxt is not None and now > nxt + interval,
            )
        )
    return ScheduleOverview(beat_started, out)
