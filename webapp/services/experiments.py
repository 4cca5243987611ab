"""A/B experiment use cases: create, start, pause, resume, stop, promote the winner
(snapshots for the charts are webapp.services.experiment_snapshots).

Each function is one use case and one transaction. One experiment runs at a time: the web
workers serve exactly one assignment scheme, and a visitor is never split between two
concurrent tests of the ranking. Variants are fixed once created, so a visitor's hashed
variant never changes under them.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, text

from engine.experiments.metrics import METRICS
from engine.serving.bundle import RETRIEVAL_MODES
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Experiment, ExperimentVariant, ModelVersion, utcnow
from webapp.services.assignment import forget_running_experiment
from webapp.services.model_versions import activate_version

MIN_VARIANTS, MAX_VARIANTS = 2, 10
SHARE_TOLERANCE = 1e-6
SERVABLE = ("ready", "active", "retired")  # building or failed versions have nothing to serve
ALPHA_RANGE = (0.001, 0.2)
_RUNNING_LOCK_KEY = 0x4B41_4142  # "KAAB": serialises the one-running check on PostgreSQL


@dataclass(frozen=True)
class VariantSpec:
    """A variant as the admin describes it."""

    name: str
    traffic_share: float  # a fraction; the variants' shares sum to 1
    model_version_id: int | None = None  # None: lexical search
    retrieval_mode: str | None = None  # None: the version's own mode
    is_control: bool = False


def get_experiment(experiment_id: int) -> Experiment | None:
    """One experiment, or None."""
    return db.session.get(Experiment, experiment_id)


def list_experiments() -> list[Experiment]:
    """Every experiment, newest first."""
    return list(db.session.scalars(select(Experiment).order_by(Experiment.id.desc())))


def variants_of(experiment_id: int) -> list[ExperimentVariant]:
    """An experiment's variants in their assignment order (the control first as created)."""
    return list(
        db.session.scalars(
            select(ExperimentVariant)
            .where(ExperimentVariant.experiment_id == experiment_id)
            .order_by(ExperimentVariant.id)
        )
    )


def running_experiment_row() -> Experiment | None:
    """The running experiment, if any."""
    return db.session.scalar(select(Experiment).where(Experiment.status == "running").limit(1))


def _validate_variants(variants: Sequence[VariantSpec]) -> None:
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise InputError(f"an experiment needs {MIN_VARIANTS} to {MAX_VARIANTS} variants, not {len(variants)}")
    names = [v.name.strip() for v in variants]
    if any(not n or len(n) > 100 for n in names):
        raise InputError("every variant needs a name of at most 100 characters")
    if len({n.casefold() for n in names}) != len(names):
        raise InputError("variant names must be unique")
    if sum(v.is_control for v in variants) != 1:
        raise InputError("exactly one variant must be the control")
    shares = [v.traffic_share for v in variants]
    if any(not math.isfinite(s) or s <= 0 for s in shares):
        raise InputError("every variant needs a traffic share above 0")
    if abs(sum(shares) - 1.0) > SHARE_TOLERANCE:
        raise InputError(f"traffic shares must sum to 100%, not {sum(shares) * 100:g}%")
    for v in variants:
        if v.retrieval_mode is not None and v.retrieval_mode not in RETRIEVAL_MODES:
            raise InputError(f"unknown retrieval mode {v.retrieval_mode!r} for variant {v.name!r}")
        if v.model_version_id is None and v.retrieval_mode not in (None, "lexical"):
            raise InputError(f"variant {v.name!r}: {v.retrieval_mode} retrieval needs a model version")
    _check_versions([v.model_version_id for v in variants if v.model_version_id is not None])


def _check_versions(version_ids: Sequence[int]) -> None:
    found = dict(
        db.session.execute(select(ModelVersion.id, ModelVersion.status).where(ModelVersion.id.in_(version_ids))).all()
    )
    for version_id in version_ids:
        if version_id not in found:
            raise InputError(f"there is no model version {version_id}")
        if found[version_id] not in SERVABLE:
            raise InputError(f"model version {version_id} is {found[version_id]}; only ready, active or retired serve")


def create_experiment(
    name: str,
    variants: Sequence[VariantSpec],
    description: str = "",
    primary_metric: str = "click_through_rate",
    alpha: float = 0.05,
    sequential: bool = True,
) -> Experiment:
    """Record a draft experiment and its variants; raises InputError on anything it cannot run."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("the experiment needs a name of at most 200 characters")
    if primary_metric not in METRICS:
        raise InputError(f"unknown metric {primary_metric!r}")
    if not (math.isfinite(alpha) and ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]):
        raise InputError(f"alpha must be between {ALPHA_RANGE[0]} and {ALPHA_RANGE[1]}")
    _validate_variants(variants)
    try:
        experiment = Experiment(
            name=name,
            description=description.strip(),
            status="draft",
            salt=secrets.token_hex(8),
            primary_metric=primary_metric,
            alpha=alpha,
            sequential=sequential,
        )
        db.session.add(experiment)
        db.session.flush()
        for v in variants:
            db.session.add(
                ExperimentVariant(
                    experiment_id=experiment.id,
                    name=v.name.strip(),
                    is_control=v.is_control,
                    traffic_share=v.traffic_share,
                    model_version_id=v.model_version_id,
                    ranking_config={"retrieval_mode": v.retrieval_mode} if v.retrieval_mode else {},
                )
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return experiment


def experiment_or_error(experiment_id: int) -> Experiment:
    """The experiment, or an InputError naming the missing id."""
    experiment = db.session.get(Experiment, experiment_id)
    if experiment is None:
        raise InputError(f"there is no experiment {experiment_id}")
    return experiment


def _go_live(experiment_id: int, allowed_from: str) -> Experiment:
    """Start or resume: refused while another experiment runs or a variant's version cannot serve."""
    try:
        if db.engine.dialect.name == "postgresql":  # two admins starting two experiments at once: one wins
            db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _RUNNING_LOCK_KEY})
        experiment = experiment_or_error(experiment_id)
        if experiment.status != allowed_from:
            raise InputError(
                f"experiment {experiment_id} is {experiment.status}; only a {allowed_from} one can go live"
            )
        other = db.session.scalar(
            select(Experiment).where(Experiment.status == "running", Experiment.id != experiment_id).limit(1)
        )
        if other is not None:
            raise InputError(
                f"experiment {other.id} ({other.name}) is running; only one experiment runs at a time: "
                "pause or stop it first"
            )
        _check_versions([v.model_version_id for v in variants_of(experiment_id) if v.model_version_id is not None])
        experiment.status = "running"
        experiment.started_at = experiment.started_at or utcnow()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    forget_running_experiment()
    return experiment


def start_experiment(experiment_id: int) -> Experiment:
    """Start a draft: from now on visitors are assigned at their first search."""
    return _go_live(experiment_id, "draft")


def resume_experiment(experiment_id: int) -> Experiment:
    """Resume a paused experiment; visitors keep their variants."""
    return _go_live(experiment_id, "paused")


def _transition(experiment_id: int, allowed_from: tuple[str, ...], to: str) -> Experiment:
    try:
        experiment = experiment_or_error(experiment_id)
        if experiment.status not in allowed_from:
            raise InputError(f"experiment {experiment_id} is {experiment.status}; it cannot be {to}")
        experiment.status = to
        if to == "stopped":
            experiment.stopped_at = utcnow()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    forget_running_experiment()
    return experiment


def pause_experiment(experiment_id: int) -> Experiment:
    """Pause: everyone gets the default search and nothing is attributed until it resumes."""
    return _transition(experiment_id, ("running",), "paused")


def stop_experiment(experiment_id: int) -> Experiment:
    """Stop for good (a draft may be stopped too, to abandon it)."""
    return _transition(experiment_id, ("draft", "running", "paused"), "stopped")


def promote_winner(experiment_id: int, variant_id: int) -> Experiment:
    """Serve a variant to all traffic: activate its version in its mode, stop the experiment, record the winner.

    activate_version commits the changes pending in the session together with the
    activation, so the experiment's stop and the version switch land in one transaction;
    a version that fails to load is refused and nothing changes.
    """
    try:
        experiment = experiment_or_error(experiment_id)
        if experiment.status == "draft" or experiment.winner_variant_id is not None:
            raise InputError(f"experiment {experiment_id} is {experiment.status}; there is nothing to promote")
        variant = db.session.get(ExperimentVariant, variant_id)
        if variant is None or variant.experiment_id != experiment.id:
            raise InputError(f"variant {variant_id} is not part of experiment {experiment_id}")
        experiment.status, experiment.winner_variant_id = "stopped", variant.id
        experiment.stopped_at = experiment.stopped_at or utcnow()
        mode = (variant.ranking_config or {}).get("retrieval_mode")
        if variant.model_version_id is None:
            for version in db.session.scalars(select(ModelVersion).where(ModelVersion.status == "active")):
                version.status = "retired"  # no active version: every worker serves lexical search
        else:
            version = db.session.get(ModelVersion, variant.model_version_id)
            if mode and version is not None:
                version.retrieval_mode = mode  # the variant's ranking configuration is what won
            activate_version(variant.model_version_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    forget_running_experiment()
    return experiment
