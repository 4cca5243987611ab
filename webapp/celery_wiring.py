"""Binds a Celery app to the Flask app (the canonical Flask pattern) and enqueues by name."""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask, current_app


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app from app.config["CELERY"]; tasks run inside an app context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def enqueue(task_name: str, *args: object) -> str:
    """Send a task by name so the web never imports worker code; returns the task id."""
    # Results live on the job row, never in the result backend: ignoring them keeps send_task from
    # touching the backend at all (with Redis down it raised RuntimeError instead of a broker error).
    result = current_app.extensions["celery"].send_task(task_name, args=list(args), ignore_result=True)
    return result.id
