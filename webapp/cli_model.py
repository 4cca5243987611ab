"""Command line for model versions: `flask --app webapp model bootstrap|train|tune|list|activate|rollback|job`."""

from __future__ import annotations

import sys
import time

import click
from flask.cli import AppGroup
from sqlalchemy import select

from webapp.celery_wiring import enqueue
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Job, ModelVersion
from webapp.services.jobs import start_job
from webapp.services.model_versions import (
    activate_version,
    active_version,
    create_version,
    mark_failed,
    rollback_version,
)

model_cli = AppGroup("model", help="Build, list, activate and roll back model versions.")


ENDED = ("succeeded", "failed", "cancelled", "refused")
LINE_SECONDS = 10.0  # without a terminal: a progress line at least this often while it moves


def _follow(job_id: int, timeout: float) -> None:
    """Show a job's progress until it ends (the work runs in a Celery worker): a bar on a terminal,
    else a line per change (a log, a pipe, `make run`'s output), so the wait is never silent."""
    deadline = time.monotonic() + timeout
    job = _read(job_id)
    if sys.stdout.isatty():
        with click.progressbar(length=1000, label=f"job {job_id}") as bar:
            while time.monotonic() < deadline:
                job = _read(job_id)
                bar.update(int(job.progress * 1000) - bar.pos)
                if job.status in ENDED:
                    break
                time.sleep(1)
    else:
        said, said_at = None, 0.0
        while time.monotonic() < deadline:
            job = _read(job_id)
            line = f"job {job_id}: {job.status} {100 * job.progress:.1f}%" + (
                f" - {job.message}" if job.message else ""
            )
            if job.status in ENDED:
                break
            if line != said and (time.monotonic() - said_at >= LINE_SECONDS or said is None):
                click.echo(line)
                said, said_at = line, time.monotonic()
            time.sleep(1)
    _report_end(job)


def _read(job_id: int) -> Job:
    db.session.expire_all()
    return db.session.get(Job, job_id)


def _report_end(job: Job) -> None:
    if job.status == "failed":
        raise click.ClickException(f"job {job.id} failed: {job.error}")
    if job.status == "cancelled":
        raise click.ClickException(f"job {job.id} was cancelled")
    if job.status == "refused":
        result = job.result or {}
        hint = f"\n{result['next_step']}" if result.get("next_step") else ""
        raise click.ClickException(
            f"job {job.id} was refused (nothing broke): {result.get('refused', job.message)}{hint}"
        )
    if job.status != "succeeded":
        raise click.ClickException(f"job {job.id} is still {job.status}; check the worker (or raise --timeout)")
    click.echo(f"job {job.id} succeeded: {job.result}")


@model_cli.command("bootstrap")
@click.option("--mode", type=click.Choice(["dense", "rrf", "hybrid"]), default="hybrid", show_default=True)
@click.option("--force", is_flag=True, help="Build another zero-shot version even if one exists.")
@click.option("--wait/--no-wait", default=False, help="Follow the build's progress until it ends.")
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds to wait with --wait.")
def bootstrap_command(mode: str, force: bool, wait: bool, timeout: float) -> None:
    """Version 1: the zero-shot MiniLM, embedded by the inference queue (serves when built)."""
    existing = db.session.scalar(select(ModelVersion).where(ModelVersion.status.in_(("building", "ready", "active"))))
    if existing is not None and not force:
        click.echo(f"version {existing.id} already exists ({existing.status}); use --force for another")
        return
    version = create_version("zero-shot all-MiniLM-L6-v2", retrieval_mode=mode)
    try:
        job = start_job("build_version", "inference.build_version", {"version_id": version.id})
    except Exception as exc:  # the broker is unreachable or misconfigured: leave no orphan "building" row
        db.session.rollback()
        mark_failed(version.id, f"could not enqueue the build: {exc}")
        raise click.ClickException(f"could not enqueue the build of version {version.id}: {exc}") from None
    click.echo(f"version {version.id} building as job {job.id} on the inference queue")
    if wait:
        _follow(job.id, timeout)


@model_cli.command("train")
@click.option("--parent", "parent_id", type=int, help="Version to fine-tune [default: the active one].")
@click.option("--correction", type=click.Choice(["ips", "none"]), help="Position-bias correction [default: ips].")
@click.option(
    "--method", type=click.Choice(["full", "top_layers", "lora"]), help="Weights to train [FINE_TUNE_METHOD]."
)
@click.option(
    "--resume", "resume_id", type=int, help="Re-run a fine-tune job that died; it resumes from its checkpoint."
)
@click.option("--wait/--no-wait", default=False, help="Follow the run's progress until it ends.")
@click.option("--timeout", default=4 * 3600.0, show_default=True, help="Seconds to wait with --wait.")
def train_command(
    parent_id: int | None, correction: str | None, method: str | None, resume_id: int | None, wait: bool, timeout: float
) -> None:
    """Fine-tune a version on recent feedback on the training queue (as the admin's "Retrain now")."""
    if resume_id is not None:
        job = db.session.get(Job, resume_id)
        if job is None or job.kind != "fine_tune" or job.status in ("succeeded", "cancelled", "refused"):
            raise click.ClickException(f"job {resume_id} is not a fine-tune that can be re-run")
        enqueue("training.fine_tune", job.id)  # the lock refuses it while the first run is still alive
        click.echo(f"fine-tune job {job.id} re-queued; it resumes from its last checkpoint")
        if wait:
            _follow(job.id, timeout)
        return
    parent = db.session.get(ModelVersion, parent_id) if parent_id else active_version()
    if parent is None:
        raise click.ClickException(f"no version {parent_id}" if parent_id else "no active version to fine-tune")
    params: dict = {"parent_version_id": parent.id}
    if correction:
        params["correction"] = correction
    if method:
        params["train"] = {"method": method}
    job = start_job("fine_tune", "training.fine_tune", params)
    click.echo(f"fine-tune of v{parent.id} queued as job {job.id} on the training queue")
    if wait:
        _follow(job.id, timeout)


@model_cli.command("tune")
@click.option("--trials", type=click.IntRange(1, 500), default=10, show_default=True, help="Trials in the study.")
@click.option(
    "--timeout", "study_timeout", type=float, default=4 * 3600.0, show_default=True, help="Seconds for the study."
)
@click.option("--parent", "parent_id", type=int, help="Version to fine-tune [default: the active one].")
@click.option("--resume", "resume_id", type=int, help="Re-run a search whose worker died; it resumes the study.")
@click.option("--wait/--no-wait", default=False, help="Follow the search's progress until it ends.")
def tune_command(trials: int, study_timeout: float, parent_id: int | None, resume_id: int | None, wait: bool) -> None:
    """Search fine-tuning settings (Optuna, TPE) on the training queue, each trial scored on validation only."""
    from webapp.services.tuning import start_tune  # optuna: only for this command

    if resume_id is not None:
        job = db.session.get(Job, resume_id)
        if job is None or job.kind != "tune" or job.status in ("succeeded", "cancelled"):
            raise click.ClickException(f"job {resume_id} is not a search that can be re-run")
        enqueue("training.tune", job.id)
        click.echo(f"search job {job.id} re-queued; it resumes its study")
    else:
        try:
            job = start_tune(trials, study_timeout, parent_id)
        except InputError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"search of {trials} trials queued as job {job.id} on the training queue")
    if wait:
        _follow(job.id, study_timeout + 600)


@model_cli.command("list")
def list_command() -> None:
    """Versions with status, retrieval mode and headline metrics."""
    for v in db.session.scalars(select(ModelVersion).order_by(ModelVersion.id)):
        click.echo(f"v{v.id:<4} {v.status:<9} {v.retrieval_mode:<7} {v.name}  {_figures(v.metrics or {})}".rstrip())


def _figures(metrics: dict) -> str:
    """Validation figures only (the test half is for `flask eval --split test`): served NDCG@10, the gate."""
    ndcg = metrics.get("validation_ndcg10_hybrid", metrics.get("validation_ndcg10_rrf"))
    parts = []
    if isinstance(ndcg, float):
        served = metrics.get("served_pipeline", "rrf")
        parts.append(f"validation NDCG@10 {ndcg:.4f} ({served}, {metrics.get('validation_queries', '?')} queries)")
    gate = metrics.get("gate") or (metrics.get("fine_tune") or {}).get("gate")
    if gate and "difference" in gate:
        verdict = "passed" if gate["passed"] else "refused"
        parts.append(
            f"gate {verdict}: {gate['difference']:+.4f} [{gate['low']:+.4f}, {gate['high']:+.4f}] "
            f"vs v{gate['parent_version_id']} over {gate['queries']} queries"
        )
    return "  ".join(parts)


@model_cli.command("activate")
@click.argument("version_id", type=int)
def activate_command(version_id: int) -> None:
    """Serve a ready version to all traffic (refused if its artifacts do not load)."""
    try:
        version = activate_version(version_id)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"version {version.id} is active; web workers switch within seconds")


@model_cli.command("rollback")
def rollback_command() -> None:
    """Go back to the version that served before the current one."""
    try:
        version = rollback_version()
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"rolled back: version {version.id} is active")


@model_cli.command("job")
@click.argument("job_id", type=int)
@click.option("--timeout", default=1800.0, show_default=True)
def job_command(job_id: int, timeout: float) -> None:
    """Follow a background job's progress."""
    if db.session.get(Job, job_id) is None:
        raise click.ClickException(f"no job {job_id}")
    _follow(job_id, timeout)
