"""The beat schedules and their run record (webapp.services.schedule_runs, worker.schedule),
and the admin overview that shows when each last ran and runs next."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from webapp.extensions import db
from webapp.filters import duration, number
from webapp.models import ScheduleRun, utcnow
from webapp.services.schedule_runs import BEAT_ROW, SCHEDULES, record_run, schedule_overview
from worker.schedule import beat_schedule, run_scheduled


def rows() -> dict[str, ScheduleRun]:
    db.session.expire_all()
    return {r.name: r for r in db.session.scalars(select(ScheduleRun))}


def test_beat_has_one_entry_per_schedule_with_the_configured_interval(app):
    entries = beat_schedule({**app.config, "CONTEXT_FIT_INTERVAL_SECONDS": 120.0})
    assert set(entries) == {s.name for s in SCHEDULES}
    assert entries["kairos-context-fit"]["schedule"] == 120.0
    assert entries["kairos-scheduled-fine-tune"]["options"]["queue"] == "training"


def test_each_scheduled_task_records_its_run_and_outcome(app):
    import worker.tasks  # noqa: F401  (registers the tasks, as worker/celery_app.py does)
    from worker.tasks.experiments import snapshot_running
    from worker.tasks.ranking import fit_context
    from worker.tasks.training import schedule_fine_tune

    assert schedule_fine_tune() == {"started": False, "reason": "no active model version"}
    snapshot_running()
    fit_context()  # as beat sends it: no job id
    fit_context()
    recorded = rows()
    assert recorded["kairos-scheduled-fine-tune"].outcome == "started: False, reason: no active model version"
    assert recorded["kairos-experiment-snapshots"].runs == 1
    assert recorded["kairos-context-fit"].runs == 2


def test_a_failing_scheduled_body_records_the_failure_and_raises(app):
    def broken() -> dict:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        run_scheduled("kairos-context-fit", broken)
    assert rows()["kairos-context-fit"].outcome == "failed: RuntimeError: database gone"


def test_next_run_is_last_run_plus_interval_and_overdue_when_missed(app):
    config = {**app.config, "CONTEXT_FIT_INTERVAL_SECONDS": 900.0}
    before = schedule_overview(config)
    assert before.beat_started_at is None and all(s.next_run_at is None for s in before.schedules)
    record_run(BEAT_ROW, "started")
    record_run("kairos-context-fit", "fitted: True")
    now = schedule_overview(config)
    fit = next(s for s in now.schedules if s.name == "kairos-context-fit")
    snap = next(s for s in now.schedules if s.name == "kairos-experiment-snapshots")
    assert fit.next_run_at - fit.last_run_at == timedelta(seconds=900) and not fit.overdue
    assert snap.last_run_at is None and snap.next_run_at == now.beat_started_at + timedelta(hours=1)
    long_ago = utcnow() - timedelta(hours=3)
    db.session.execute(update(ScheduleRun).values(last_run_at=long_ago))
    db.session.commit()
    late = next(s for s in schedule_overview(config).schedules if s.name == "kairos-context-fit")
    assert late.overdue


def test_overview_page_shows_the_schedules_and_warns_without_beat(client, login):
    login("analyst")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Celery beat has never run" in page and "Stage-2 context ranker refit" in page
    record_run(BEAT_ROW, "started")
    record_run("kairos-scheduled-fine-tune", "started: False, reason: 3 new feedback events, 50 needed")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Celery beat has never run" not in page and "Celery beat last started" in page
    assert "3 new feedback events, 50 needed" in page and "1 h" in page and "15 min" in page


def test_duration_and_number_filters():
    assert duration(60.52) == "1 min 1 s" and duration(3.25) == "3.2 s" and duration(7200) == "2 h"
    assert duration(None) == "–" and duration(90061) == "25 h 1 min"
    assert number(821220) == "821,220" and number(0.5, 2) == "0.50" and number(None) == "–"
