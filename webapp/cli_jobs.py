"""Command line for background jobs: `flask --app webapp jobs requeue`."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from kombu.exceptions import OperationalError as BrokerUnavailable

from webapp.services.jobs import fail_stale_jobs, requeue_stale_jobs

jobs_cli = AppGroup("jobs", help="Inspect and recover background jobs.")


@jobs_cli.command("requeue")
@click.option(
    "--older-than",
    default=600.0,
    show_default=True,
    help="Seconds a queued job has waited without a worker starting it.",
)
def requeue_command(older_than: float) -> None:
    """Send again queued jobs whose message was lost (after the broker restarted without its data)."""
    try:
        sent = requeue_stale_jobs(older_than)
    except BrokerUnavailable as exc:
        raise click.ClickException(f"the job queue is still unreachable ({exc}); nothing more was sent") from None
    for job in sent:
        click.echo(f"job {job.id} ({job.kind}) sent again as task {job.celery_task_id}")
    click.echo(f"{len(sent)} job(s) sent again")


@jobs_cli.command("fail-stale")
def fail_stale_command() -> None:
    """Fail the queued or running jobs silent for longer than their task's time limit (worker lost)."""
    for job in fail_stale_jobs():
        click.echo(f"job {job.id} ({job.kind}) failed: {job.error}")
