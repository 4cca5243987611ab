"""Each web worker follows the active model version: it notices an activation within
VERSION_CHECK_SECONDS, loads the new artifacts in a background thread while the old
version keeps answering, then swaps the reference. A version that fails to load is
remembered with its error and never served; the last good one stays.

While an A/B experiment runs, each worker also holds its variants' versions (loaded the
same way, in the background, and kept in step with the catalog by the Searcher); a search
names the bundle of its visitor's variant (webapp.services.assignment)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from flask import current_app
from sqlalchemy import select

from engine.serving.bundle import BundleError, ServingBundle, load_bundle
from engine.serving.vectors import serve_single_threaded
from webapp.extensions import db
from webapp.models import Experiment, ExperimentVariant, ModelVersion
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


def _variant_rows() -> list[tuple[int, str, str]]:
    """The model versions of the running experiment's variants (lexical variants need none)."""
    rows = db.session.execute(
        select(ModelVersion.id, ModelVersion.artifact_path, ModelVersion.retrieval_mode)
        .join(ExperimentVariant, ExperimentVariant.model_version_id == ModelVersion.id)
        .join(Experiment, Experiment.id == ExperimentVariant.experiment_id)
        .where(Experiment.status == "running")
        .distinct()
    ).all()
    return [(row.id, row.artifact_path, row.retrieval_mode) for row in rows]


def _variant_loading() -> set[int]:
    """Variant versions this worker is loading now (shared with the loader threads)."""
    return current_app.extensions.setdefault("kairos.variant_loading", set())


def _load_variant(state, loading: set[int], version: tuple[int, str, str], variant: str, threads: int, cache: int):
    version_id, path, mode = version
    serve_single_threaded()
    try:
        bundle = load_bundle(path, version_id, variant=variant, threads=threads, cache_size=cache, retrieval_mode=mode)
        state.searcher.add_bundle(bundle)
    except BundleError as exc:
        state.failed_versions[version_id] = str(exc)
    finally:
        loading.discard(version_id)


def follow_variant_versions(wait: bool = False) -> None:
    """Hold the running experiment's variant versions beside the active one; drop the rest."""
    state = searcher_state()
    searcher = state.searcher
    config = current_app.config
    wanted = _variant_rows()
    for version_id in set(searcher.extra_bundles) - {v[0] for v in wanted}:
        searcher.drop_bundle(version_id)  # the experiment stopped: free the memory
    loading = _variant_loading()
    for version in wanted:
        with _START_LOCK:
            if version[0] in searcher.extra_bundles or version[0] in state.failed_versions or version[0] in loading:
                continue
            attached = searcher.bundle
            if attached is not None and attached.version_id == version[0]:
                searcher.add_bundle(attached)  # the active version is a variant too: share it, load nothing
                continue
            loading.add(version[0])
        args = (
            state,
            loading,
            version,
            config["ENCODER_VARIANT"],
            config["ENCODER_THREADS"],
            config["QUERY_CACHE_SIZE"],
        )
        if wait:
            _load_variant(*args)
        else:
            threading.Thread(target=_load_variant, args=args, name=f"load-variant-v{version[0]}", daemon=True).start()


def held_bundle(version_id: int) -> ServingBundle | None:
    """This worker's loaded bundle of a version (a variant's or the active one), if it holds one."""
    searcher = searcher_state().searcher
    bundle = searcher.extra_bundles.get(version_id)
    if bundle is None and searcher.bundle is not None and searcher.bundle.version_id == version_id:
        bundle = searcher.bundle
    return bundle


def version_load_state(version_id: int) -> str:
    """This worker's hold on a version: "loaded", "loading", "failed: <why>" or "not loaded"."""
    state = searcher_state()
    if held_bundle(version_id) is not None:
        return "loaded"
    if version_id in _variant_loading() or state.loading_version == version_id:
        return "loading"
    if version_id in state.failed_versions:
        return f"failed: {state.failed_versions[version_id]}"
    return "not loaded"


def follow_active_version(wait: bool = False) -> None:
    """Start loading the active version if this worker does not serve it yet (throttled).

    The same check keeps the running experiment's variant versions loaded."""
    state = searcher_state()
    config = current_app.config
    now = time.monotonic()
    if not wait and now - state.last_version_check < config["VERSION_CHECK_SECONDS"]:
        return
    state.last_version_check = now
    _follow_active(state, wait)
    follow_variant_versions(wait)  # after the active one: a promoted variant's bundle is attached before it is dropped


def _follow_active(state, wait: bool) -> None:
    config = current_app.config
    active = _active_row()
    if active is None:
        if state.version_id is not None:  # every version retired: back to lexical search
            state.searcher.attach(None)
            state.version_id = None
        return
    with _START_LOCK:  # two request threads must not both start loading the same version
        attached = state.searcher.bundle
        if attached is not None and active[0] == state.version_id and attached.retrieval_mode != active[2]:
            state.searcher.attach(replace(attached, retrieval_mode=active[2]))  # a promoted variant's mode
            return
        if active[0] == state.version_id or active[0] in state.failed_versions or state.loading_version is not None:
            return
        held = state.searcher.extra_bundles.get(active[0])
        if held is not None:  # a promoted variant: already loaded and in step with the catalog
            state.searcher.attach(replace(held, retrieval_mode=active[2]))
            state.version_id = active[0]
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
    from webapp.services.instant_suggest import current_suggest_index

    """Build the index and load the active version before the first request (gunicorn hook, CLI)."""
    serve_single_threaded()
    sync_searcher(force=True)
    follow_active_version(wait=True)
    current_suggest_index()  # the first keystroke should not pay for building the suggestions


def serving_status() -> dict:
    """What this worker serves and why not something else (for the admin and health checks)."""
    state = searcher_state()
    bundle = state.searcher.bundle
    return {
        "version_id": state.version_id,
        "mode": state.searcher.mode,
        # The name searches report (the API's "ranker", Explain): one name for what serves.
        "ranker": bundle.ranker_label() if bundle is not None else "lexical",
        "loading": state.loading_version,
        "failed": dict(state.failed_versions),
    }
