"""Removing the half-written version directories that killed builds leave behind.

A build writes into a hidden `.v<N>.<random>.partial` sibling and renames it into place when
complete (engine/modeling/io.py); a build killed by SIGKILL (the OOM killer, a lost machine)
never reaches its cleanup, so the directory would stay forever. It is removed here once it
is older than the longest hard time limit of a task that writes versions: a directory is
created after its task started, and Celery's prefork pool kills a task at its hard limit, so
a directory that old cannot belong to a build still running on any worker.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from celery import Celery

log = logging.getLogger(__name__)

PARTIAL_GLOB = ".v*.partial"
# The tasks that write version directories (fine_tune builds its child version in-task).
VERSION_TASKS = ("inference.build_version", "training.fine_tune")
# Workers on other machines share the directory: their clocks (and NFS's) may disagree a little.
CLOCK_SKEW_SECONDS = 600
# Used when no version task is registered with a time limit (never shorter than one that is).
FALLBACK_SECONDS = 24 * 3600


def stale_after_seconds(celery: Celery) -> float:
    """How old a partial directory must be before no running build can own it."""
    tasks = celery.tasks
    limits = [
        (tasks[name].time_limit if name in tasks else None) or celery.conf.task_time_limit for name in VERSION_TASKS
    ]
    longest = max(limits) if all(limits) else FALLBACK_SECONDS  # a task without a hard limit: assume a day
    return longest + CLOCK_SKEW_SECONDS


def remove_stale_partials(directory: Path, older_than: float, now: float | None = None) -> list[Path]:
    """Remove the partial version directories in `directory` last modified over `older_than`
    seconds ago; returns what was removed. Never raises: a failed cleanup must not fail a build."""
    now = time.time() if now is None else now
    removed = []
    try:
        candidates = sorted(directory.glob(PARTIAL_GLOB))
    except OSError as exc:
        log.warning("cannot list %s for killed builds' partial directories: %s", directory, exc)
        return removed
    for path in candidates:
        try:
            age = now - path.lstat().st_mtime
            if not path.is_dir() or path.is_symlink() or age <= older_than:
                continue
            shutil.rmtree(path)
        except FileNotFoundError:
            continue  # another worker's cleanup removed it first
        except OSError as exc:
            log.warning("could not remove the partial version directory %s: %s", path, exc)
            continue
        log.warning("removed %s, left by a killed build %.1f hours ago", path, age / 3600)
        removed.append(path)
    return removed
