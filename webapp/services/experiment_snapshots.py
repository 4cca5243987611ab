"""Experiment snapshots: the report's per-variant metrics, moments and comparisons stored at a
point in time, so the dashboard can chart each metric more finely than per day. Celery beat
takes one of every running experiment each EXPERIMENT_SNAPSHOT_SECONDS (worker/schedule.py);
an admin can take one from the dashboard."""

from __future__ import annotations

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Experiment, ExperimentSnapshot, utcnow
from webapp.services.experiment_metrics import experiment_report, load_experiment_data
from webapp.services.experiments import experiment_or_error

SNAPSHOT_FORMAT = 1


def _snapshot_data(experiment: Experiment) -> dict:
    data = load_experiment_data(experiment.id)
    report = experiment_report(experiment, data)
    now = data.looks[-1] if data.looks else {}
    return {
        "format": SNAPSHOT_FORMAT,
        "primary_metric": report.primary_metric,
        "variants": {
            str(v.key): {
                "name": v.name,
                "visitors": v.visitors,
                "metrics": {m: est.to_dict() for m, est in v.metrics.items()},
                "moments": {m: moments.to_dict() for m, moments in now.get(v.key, {}).items()},
            }
            for v in report.variants
        },
        "treatments": {
            str(t.key): {
                "verdict": {"outcome": t.verdict.outcome, "label": t.verdict.label, "p_value": t.verdict.p_value},
                "comparisons": {m: c.to_dict() for m, c in t.comparisons.items()},
            }
            for t in report.treatments
        },
        "srm": {"p_value": report.srm.p_value, "flagged": report.srm.flagged, "observed": list(report.srm.observed)},
    }


def take_snapshot(experiment_id: int) -> ExperimentSnapshot:
    """Store the experiment's metrics and comparisons now, for the charts over time."""
    try:
        experiment = experiment_or_error(experiment_id)
        snapshot = ExperimentSnapshot(experiment_id=experiment.id, taken_at=utcnow(), data=_snapshot_data(experiment))
        db.session.add(snapshot)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return snapshot


def snapshot_running() -> list[int]:
    """Snapshot every running experiment (the beat task); returns the snapshot ids."""
    ids = db.session.scalars(select(Experiment.id).where(Experiment.status == "running").order_by(Experiment.id))
    return [take_snapshot(experiment_id).id for experiment_id in list(ids)]


def snapshots_of(experiment_id: int) -> list[ExperimentSnapshot]:
    """An experiment's snapshots, oldest first."""
    return list(
        db.session.scalars(
            select(ExperimentSnapshot)
            .where(ExperimentSnapshot.experiment_id == experiment_id)
            .order_by(ExperimentSnapshot.taken_at, ExperimentSnapshot.id)
        )
    )
