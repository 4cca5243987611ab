"""Each web worker follows the active model version: it notices an activation within
VERSION_CHECK_SECONDS, loads the new artifacts in a background thread while the old
version keeps answering, then swaps the reference. A version that fails to load is
remembered with its error and never served; the last good one stays."""

from __future__ import annotations

import threading
import time

from flask import current_app
from sqlalchemy import select

from engine.serving.bundle import BundleError, load_bundle
from engine.serving.vectors import serve_single_threaded
from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.search_index import searcher_state, sync_searcher

_START_LOCK = threading.Lock()


def _active_row() -> tuple[int, str, str] | None:
    row = db.session.execute(
        select(ModelVersion.id, ModelVersion.artifact_path, ModelVersion.retrieval_mode).where(
            ModelVersion.status == "active"
        )
    ).first()
    return (row.id, row.artifact_path, row.retrieval_mode) if row else None


def _load_and_attach(state, version: tuple[int, str, str], variant: str, threads: int, cache: int) -> None:
    version_id, path, mode = version
    serve_single_threaded()  # this process serves queries (a no-op after the first call)
    try:
        bundle = load_bundle(path, version_id, variant=variant, threads=threads, cache_size=cache, retrieval_mode=mode)
        state.searcher.attach(bundle)
        state.version_id = version_id
    except BundleError as exc:
        state.failed_versions[version_id] = str(exc)
    finally:
        state.loading_version = None


def follow_active_version(wait: bool = False) -> None:
    """Start loading the active version if this worker does not serve it yet (throttled)."""
    state = searcher_state()
    config = current_app.config
    now = time.monotonic()
    if not wait and now - state.last_version_check < config["VERSION_CHECK_SECONDS"]:
        return
    state.last_version_check = now
    active = _active_row()
    if active is None:
        if state.version_id is not None:  # every version retired: back to lexical search
            state.searcher.attach(None)
            state.version_id = None
        return
    with _START_LOCK:  # two request threads must not both start loading the same version
        if active[0] == state.version_id or active[0] in state.failed_versions or state.loading_version is not None:
            return
        state.loading_version = active[0]
    args = (state, active, config["ENCODER_VARIANT"], config["ENCODER_THREADS"], config["QUERY_CACHE_SIZE"])
    if wait:
        _load_and_attach(*args)
        if active[0] in state.failed_versions:
            current_app.logger.error("model version %s not served: %s", active[0], state.failed_versions[active[0]])
        return
    threading.Thread(target=_load_and_attach, args=args, name=f"load-v{active[0]}", daemon=True).start()


def warm_up() -> None:
    """Build the index and load the active version before the first request (gunicorn hook, CLI)."""
    serve_single_threaded()
    sync_searcher(force=True)
    follow_active_version(wait=True)


def serving_status() -> dict:
    """What this worker serves and why not something else (for the admin and health checks)."""
    state = searcher_state()
    return {
        "version_id": state.version_id,
        "mode": state.searcher.mode,
        "loading": state.loading_version,
        "failed": dict(state.failed_versions),
    }
