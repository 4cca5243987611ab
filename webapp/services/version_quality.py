"""The quality check activation runs on a version's artifacts before it serves.

A version records its probe figure at build (engine.evaluation.probe: dense NDCG@10 on a
handful of train-half queries). Activation measures the same figure on the artifacts it
has just loaded, through this worker's searcher (the live catalog), and refuses a version
more than ACTIVATION_MAX_PROBE_DROP below its own figure: readable but wrong artifacts pass
every load check yet retrieve the wrong products. A version without a recorded figure (built
before it existed, or without labelled queries) is not probed.
"""

from __future__ import annotations

from flask import current_app

from engine.evaluation.probe import PROBE_METRIC, load_probe, probe_ndcg
from engine.serving.bundle import ServingBundle
from webapp.models import ModelVersion
from webapp.services.search_index import get_searcher


def quality_refusal(version: ModelVersion, bundle: ServingBundle) -> str | None:
    """Why this version must not serve (its probe fell clearly below its build figure), or None."""
    recorded = (version.metrics or {}).get(PROBE_METRIC)
    if not isinstance(recorded, int | float) or isinstance(recorded, bool):
        return None
    probe = load_probe(
        current_app.config["RANKER_QRELS"],
        current_app.config.get("RANKER_QUERIES") or None,
        current_app.config["INSTANCE_DIR"],
    )
    if probe is None:
        return None
    measured = probe_ndcg(get_searcher(), probe, bundle)
    allowed = current_app.config["ACTIVATION_MAX_PROBE_DROP"]
    if measured < recorded - allowed:
        return (
            f"its quality check scores dense NDCG@10 {measured:.3f} on {len(probe.queries)} train queries, "
            f"against {recorded:.3f} recorded at build (more than {allowed:.2f} below): its artifacts "
            "load but do not retrieve what they did"
        )
    return None
