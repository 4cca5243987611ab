"""A/B assignment: which variant serves a visitor, deterministic, sticky, and recorded at first search.

A visitor's bucket is a uniform number in [0, 1) from sha256(f"{salt}:{visitor_id}"); the
variants' traffic shares cut [0, 1) into consecutive ranges in variant order, and the
bucket's range is the variant. The same visitor always lands in the same variant of an
experiment, and experiments with different salts split visitors independently.

The exposure (an ExperimentAssignment row) is written in the transaction of the visitor's
first search served under the running experiment, and only once every variant's model
version is loaded in the worker that answers: a worker still loading serves its default
and attributes nothing, for every visitor alike, so no variant gains or loses visitors by
when its bundle came up. Each web worker keeps the running experiment in memory for
EXPERIMENT_CACHE_SECONDS, so a search costs one indexed lookup of the visitor's assignment.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.serving.bundle import ServingBundle
from webapp.extensions import db
from webapp.models import Experiment, ExperimentAssignment, ExperimentVariant
from webapp.services.search_index import follower_runs
from webapp.services.serving_version import held_bundle

CACHE_SECONDS = 1.0  # default for EXPERIMENT_CACHE_SECONDS: a started or stopped experiment reaches every worker
_CACHE_KEY = "kairos.running_experiment"
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class LiveVariant:
    """What serving needs to know about a variant."""

    id: int
    name: str
    traffic_share: float
    model_version_id: int | None  # None: lexical search, no model
    retrieval_mode: str | None  # from ranking_config; None: the version's own mode


@dataclass(frozen=True)
class LiveExperiment:
    id: int
    salt: str
    variants: tuple[LiveVariant, ...]


@dataclass(frozen=True)
class Serving:
    """How to answer one search: the variant (None: the default, unattributed) and its bundle and mode."""

    experiment_id: int | None = None
    variant: LiveVariant | None = None
    bundle: ServingBundle | None = None
    mode: str | None = None
    new_exposure: bool = False

    @property
    def variant_id(self) -> int | None:
        return self.variant.id if self.variant is not None else None


DEFAULT = Serving()


def bucket(salt: str, visitor_id: str) -> float:
    """The visitor's uniform position in [0, 1) for an experiment with this salt."""
    digest = hashlib.sha256(f"{salt}:{visitor_id}".encode()).hexdigest()
    return int(digest[:15], 16) / 16**15


def variant_index(shares: Sequence[float], position: float) -> int:
    """The index of the share range holding position (cumulative shares; rounding falls to the last)."""
    cumulative = 0.0
    for index, share in enumerate(shares):
        cumulative += share
        if position < cumulative:
            return index
    return len(shares) - 1


def assign(experiment: LiveExperiment, visitor_id: str) -> LiveVariant:
    """The variant a visitor belongs to (pure: no database)."""
    shares = [v.traffic_share for v in experiment.variants]
    return experiment.variants[variant_index(shares, bucket(experiment.salt, visitor_id))]


def _load_running() -> LiveExperiment | None:
    experiment = db.session.scalar(
        select(Experiment).where(Experiment.status == "running").order_by(Experiment.id).limit(1)
    )
    if experiment is None:
        return None
    rows = db.session.scalars(
        select(ExperimentVariant).where(ExperimentVariant.experiment_id == experiment.id).order_by(ExperimentVariant.id)
    ).all()
    variants = tuple(
        LiveVariant(v.id, v.name, v.traffic_share, v.model_version_id, (v.ranking_config or {}).get("retrieval_mode"))
        for v in rows
    )
    return LiveExperiment(experiment.id, experiment.salt, variants)


def running_experiment() -> LiveExperiment | None:
    """The running experiment as this worker saw it at most EXPERIMENT_CACHE_SECONDS ago.

    With a follower (webapp.services.serving_follower) refreshing it, the copy it keeps.
    """
    app = current_app._get_current_object()
    cached = app.extensions.get(_CACHE_KEY)
    if cached is not None and (time.monotonic() < cached[0] or follower_runs()):
        return cached[1]
    return refresh_running_experiment()


def refresh_running_experiment() -> LiveExperiment | None:
    """This worker's copy of the running experiment, read again once it is EXPERIMENT_CACHE_SECONDS old."""
    app = current_app._get_current_object()
    ttl = float(app.config.get("EXPERIMENT_CACHE_SECONDS", CACHE_SECONDS))
    now = time.monotonic()
    with _CACHE_LOCK:  # one thread refreshes; the others wait for its answer
        cached = app.extensions.get(_CACHE_KEY)
        if cached is not None and now < cached[0]:
            return cached[1]
        live = _load_running()
        app.extensions[_CACHE_KEY] = (time.monotonic() + ttl, live)
        return live


def forget_running_experiment() -> None:
    """Drop this worker's cached experiment (after a lifecycle change made in this process)."""
    current_app.extensions.pop(_CACHE_KEY, None)


def serving_for(visitor_id: str | None) -> Serving:
    """How to answer this visitor's search now; new_exposure says whether to record the assignment."""
    experiment = running_experiment() if visitor_id else None
    if experiment is None:
        return DEFAULT
    bundles: dict[int, ServingBundle] = {}
    for variant in experiment.variants:
        if variant.model_version_id is not None:
            bundle = held_bundle(variant.model_version_id)
            if bundle is None:
                return DEFAULT  # this worker is still loading a variant: attribute nothing yet
            bundles[variant.id] = bundle
    stored = db.session.scalar(
        select(ExperimentAssignment.variant_id).where(
            ExperimentAssignment.experiment_id == experiment.id, ExperimentAssignment.visitor_id == visitor_id
        )
    )
    by_id = {v.id: v for v in experiment.variants}
    variant = by_id.get(stored) if stored is not None else assign(experiment, visitor_id)
    if variant is None:
        return DEFAULT  # cannot happen while variants are immutable; never serve a stranger's variant
    mode = variant.retrieval_mode or ("lexical" if variant.model_version_id is None else None)
    return Serving(experiment.id, variant, bundles.get(variant.id), mode, new_exposure=stored is None)


def record_exposure(experiment_id: int, variant_id: int, visitor_id: str, exposed_at: datetime | None = None) -> bool:
    """Insert the visitor's assignment unless one exists; True when this call wrote it.

    Runs inside the caller's transaction (the search log) under a savepoint: a concurrent
    first search by the same visitor hits the unique constraint, and only the savepoint is
    rolled back. The variant is deterministic, so the row already there says the same.
    """
    row = ExperimentAssignment(experiment_id=experiment_id, variant_id=variant_id, visitor_id=visitor_id)
    if exposed_at is not None:
        row.exposed_at = exposed_at
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return False
    return True
