"""The one Celery entrypoint: `celery -A worker.celery_app worker -Q inference,training`.

It builds the Flask app (so tasks share config, models and services with the web),
disposes the database engine in each forked child so no connection crosses a fork, and on
start removes the partial version directories that killed builds left behind.
"""

from __future__ import annotations

from billiard.exceptions import WorkerLostError
from celery.signals import beat_embedded_init, beat_init, task_failure, worker_process_init, worker_ready

from webapp import create_app
from worker.schedule import beat_schedule

flask_app = create_app()
celery = flask_app.extensions["celery"]
celery.conf.beat_schedule = beat_schedule(flask_app.config)  # `celery -A worker.celery_app beat`

import worker.tasks  # noqa: E402,F401  (registers the tasks)


@task_failure.connect
def _fail_the_job_of_a_lost_worker(sender=None, exception=None, args=None, **_: object) -> None:
    """A pool child killed more often than its task retries never reached run_job's error
    handling; without this its job would say "running" forever."""
    from webapp.services.jobs import JOB_TASKS, fail_lost_job

    if isinstance(exception, WorkerLostError) and sender.name in JOB_TASKS.values() and args:
        with flask_app.app_context():
            fail_lost_job(int(args[0]), f"the worker process running it died: {exception} (no retries left)")


@worker_ready.connect
def _remove_killed_builds_partials(**_: object) -> None:
    """A worker restarted after SIGKILL is when a killed build's leftovers are most likely."""
    from webapp.services.model_versions import versions_dir
    from worker.building.partials import remove_stale_partials, stale_after_seconds

    with flask_app.app_context():
        remove_stale_partials(versions_dir(), stale_after_seconds(celery))


@worker_process_init.connect
def _dispose_engine_after_fork(**_: object) -> None:
    from webapp.extensions import db

    with flask_app.app_context():
        db.engine.dispose(close=False)


@beat_init.connect
@beat_embedded_init.connect
def _record_beat_start(**_: object) -> None:
    """The admin overview tells "beat runs, next check at ..." from "beat never started"."""
    from webapp.services.schedule_runs import BEAT_ROW, record_run

    with flask_app.app_context():
        record_run(BEAT_ROW, "started")
