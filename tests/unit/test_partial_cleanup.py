"""Removing killed builds' partial version directories (worker.building.partials): only those
older than the longest hard time limit of a version-writing task, at build start and when a
worker comes up. Ages are set with os.utime against a fixed clock: no sleeping."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from celery import Celery

from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.model_versions import create_version, versions_dir
from worker.building.partials import (
    CLOCK_SKEW_SECONDS,
    FALLBACK_SECONDS,
    VERSION_TASKS,
    remove_stale_partials,
    stale_after_seconds,
)

NOW = 1_800_000_000.0
HOUR = 3600


def make_dir(parent: Path, name: str, age: float, now: float = NOW) -> Path:
    """A directory (with a file, as a killed build leaves) last modified `age` seconds before `now`."""
    path = parent / name
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"half")
    os.utime(path, (now - age, now - age))
    return path


def test_only_partials_older_than_the_limit_are_removed_and_logged(tmp_path, caplog):
    old = make_dir(tmp_path, ".v3.k2j4x9.partial", age=5 * HOUR)
    young = make_dir(tmp_path, ".v4.a8f0c1.partial", age=1 * HOUR)  # a build still running somewhere
    published = make_dir(tmp_path, "v2", age=50 * HOUR)  # a finished version is never touched
    hidden_other = make_dir(tmp_path, ".v2.json.tmp", age=50 * HOUR)
    stray_file = tmp_path / ".v5.zzz.partial"
    stray_file.write_text("not a directory")
    os.utime(stray_file, (NOW - 50 * HOUR, NOW - 50 * HOUR))

    with caplog.at_level(logging.WARNING, logger="worker.building.partials"):
        removed = remove_stale_partials(tmp_path, older_than=4 * HOUR, now=NOW)

    assert removed == [old] and not old.exists()
    assert young.is_dir() and published.is_dir() and hidden_other.is_dir() and stray_file.is_file()
    assert f"removed {old}" in caplog.text and "5.0 hours ago" in caplog.text


def test_the_age_is_strictly_over_the_limit(tmp_path):
    at_limit = make_dir(tmp_path, ".v7.abc.partial", age=4 * HOUR)
    assert remove_stale_partials(tmp_path, older_than=4 * HOUR, now=NOW) == []
    assert remove_stale_partials(tmp_path, older_than=4 * HOUR - 1, now=NOW) == [at_limit]


def test_a_missing_directory_is_not_an_error(tmp_path):
    assert remove_stale_partials(tmp_path / "nowhere", older_than=0, now=NOW) == []


def _noop() -> None:
    """A task body: only its registration and time limit matter here."""


def test_the_safe_age_is_the_longest_hard_limit_of_a_version_writing_task():
    app = Celery("limits", set_as_current=False)
    for name in VERSION_TASKS:  # once worker.tasks is imported, its shared tasks land in every new app
        app.tasks.pop(name, None)
    build, fine_tune = VERSION_TASKS
    app.task(name=build, time_limit=100, shared=False)(_noop)
    assert stale_after_seconds(app) == FALLBACK_SECONDS + CLOCK_SKEW_SECONDS  # fine_tune unknown: assume a day
    app.task(name=fine_tune, time_limit=300, shared=False)(_noop)
    assert stale_after_seconds(app) == 300 + CLOCK_SKEW_SECONDS


def test_a_build_removes_stale_partials_before_it_starts(app):
    from worker.building.version_build import build_version  # torch: imported here, as in the worker

    version = create_version("after a killed build")
    now = time.time()
    limit = stale_after_seconds(app.extensions["celery"])
    killed = make_dir(versions_dir(), f".v{version.id}.old123.partial", age=limit + HOUR, now=now)
    running = make_dir(versions_dir(), ".v99.new456.partial", age=limit - HOUR, now=now)
    with pytest.raises(ValueError, match="no active products"):  # the empty catalog stops it right after
        build_version(version.id, lambda done, total: None)
    assert not killed.exists() and running.is_dir()
    assert db.session.get(ModelVersion, version.id).status == "building"  # left for a re-run


def test_a_starting_worker_removes_stale_partials(app, monkeypatch):
    import worker.celery_app as celery_app

    monkeypatch.setattr(celery_app, "flask_app", app)
    # The real tasks' limits: fine_tune's hard limit (4 h 5 min) is the longest.
    limit = stale_after_seconds(celery_app.celery)
    assert limit == max(celery_app.celery.tasks[name].time_limit for name in VERSION_TASKS) + CLOCK_SKEW_SECONDS
    now = time.time()
    killed = make_dir(versions_dir(), ".v1.abc.partial", age=limit + 60, now=now)
    running = make_dir(versions_dir(), ".v2.def.partial", age=3 * HOUR, now=now)
    celery_app._remove_killed_builds_partials(sender=None)
    assert not killed.exists() and running.is_dir()
