"""The one Celery entrypoint: `celery -A worker.celery_app worker -Q inference,training`.

It builds the Flask app (so tasks share config, models and services with the web) and
disposes the database engine in each forked child so no connection crosses a fork.
"""

from __future__ import annotations

from celery.signals import worker_process_init

from webapp import create_app
from worker.schedule import beat_schedule

flask_app = create_app()
celery = flask_app.extensions["celery"]
celery.conf.beat_schedule = beat_schedule(flask_app.config)  # `celery -A worker.celery_app beat`

import worker.tasks  # noqa: E402,F401  (registers the tasks)


@worker_process_init.connect
def _dispose_engine_after_fork(**_: object) -> None:
    from webapp.extensions import db

    with flask_app.app_context():
        db.engine.dispose(close=False)
