"""Fine-tune a model version on recent feedback and publish it through the build pipeline.

1. load the parent version; 2. export the feedback window (it ends when the job was
created, so a resumed run rebuilds the same data) and fit the click model; 3. build the
labelled pairs, holding out every validation and test query; 4. evaluate the parent on
the validation slice of the train half, per query (the test half is never read); 5. fine-tune
with checkpoints in a directory keyed by the job; 6. build the child version (re-embed,
export ONNX, choose int8, fit the ranker, choose what serves) and, before it is published,
compare it with the parent on the same queries by a paired bootstrap: the gate refuses it
unless the 95% interval of the difference stays above minus the non-inferiority margin;
7. the child is 'ready', never active: an admin or an A/B test decides.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from engine.evaluation.label_sets import LabelSet
from engine.evaluation.paired import paired_bootstrap
from engine.modeling.config import LossWeights
from engine.modeling.io import load_model_version
from engine.serving.bundle import load_bundle
from engine.serving.heads import HEAD_NAMES, HEADS_FILE, heads_in, trained_names
from engine.serving.searcher import Searcher
from engine.training.click_model import fit_pbm, identified_or_curve, uniform_model
from engine.training.dataset import DatasetConfig, build_dataset, click_rows
from engine.training.finetune import FineTuneConfig, fine_tune
from engine.training.params import with_categories
from webapp.extensions import db
from webapp.models import ModelVersion, Product
from webapp.services.feedback_export import export_feedback
from webapp.services.model_versions import create_version
from webapp.services.search_index import product_card
from worker.building.selection import per_query_ndcg
from worker.building.version_build import build_labels, build_version

MODES = ("dense", "rrf", "hybrid")  # hybrid: what the version serves (its chosen ranker, or RRF)


class FineTuneRefused(RuntimeError):
    """The run ends without a new version, for a reason the message states; hint says what to do."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(reason)
        self.hint = hint


def feedback_hint(needed: int, days: float) -> str:
    """What a fine-tune needs and where it comes from, for a refusal on too little feedback."""
    return (
        f"Fine-tuning learns from shoppers' clicks, add-to-carts and purchases on search results: it needs "
        f"{needed} positive (query, product) pairs from the last {days:g} days. Real traffic on the storefront "
        "makes them. For a demo, send simulated shoppers to the running shop, then retrain again: "
        ".venv/bin/flask --app webapp simulate --base-url http://127.0.0.1:8000 --sessions 500"
    )


@dataclass(frozen=True)
class RunSettings:
    """One run's settings: the app's FINE_TUNE_* config, then the job's overrides."""

    correction: str = "ips"  # ips: inverse-propensity weights from the fitted click model; none: raw clicks
    window_days: float = 30.0
    min_positive_pairs: int = 50
    gate_margin: float = 0.01  # non-inferiority margin: absolute validation NDCG@10 the child may trail by
    gate_mode: str = "hybrid"
    train: FineTuneConfig = field(default_factory=FineTuneConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)

    @classmethod
    def from_config(cls, config: Mapping, params: Mapping) -> RunSettings:
        """Defaults from the app config, overridden by the job's params (unknown keys are an error)."""
        train = {"method": config["FINE_TUNE_METHOD"], "max_seconds": config["FINE_TUNE_MAX_TRAIN_SECONDS"]}
        train.update(params.get("train", {}))
        settings = cls(
            correction=params.get("correction", "ips"),
            window_days=float(params.get("window_days", config["FINE_TUNE_WINDOW_DAYS"])),
            min_positive_pairs=int(params.get("min_positive_pairs", config["FINE_TUNE_MIN_POSITIVE_PAIRS"])),
            gate_margin=float(params.get("gate_margin", config["FINE_TUNE_GATE_MARGIN"])),
            gate_mode=params.get("gate_mode", "hybrid"),
            train=FineTuneConfig.from_dict(train),
            dataset=DatasetConfig(**params.get("dataset", {})),
        )
        if settings.correction not in ("ips", "none") or settings.gate_mode not in MODES:
            raise ValueError("correction must be ips or none, gate_mode dense, rrf or hybrid")
        return settings


@dataclass
class Hooks:
    """How the run reports to its job row and learns that it should stop."""

    log: Callable[[str], None]
    progress: Callable[[int, int], None]
    should_stop: Callable[[], bool]
    remember: Callable[[str, object], None]  # keep a value on the job row (survives a restart)
    recall: Callable[[str], object]


def split_labels() -> dict[str, LabelSet] | None:
    """The build's validation slice (judges the gate) and the texts fine-tuning must never train on."""
    labels = build_labels()
    if labels is None or not labels.validation.queries:
        return None
    held_out = LabelSet(labels.validation.queries + labels.test.queries, labels.validation.judgments)
    return {"validation": labels.validation, "held_out": held_out}


def validation_scores(searcher: Searcher, validation: LabelSet) -> dict[str, dict[str, float]]:
    """Per-query validation NDCG@10 per retrieval mode."""
    return {mode: per_query_ndcg(searcher, validation, mode) for mode in MODES}


def means(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """validation_ndcg10_<mode>: the mean of each mode's per-query scores, for logs and metrics."""
    return {f"validation_ndcg10_{mode}": round(sum(s.values()) / max(len(s), 1), 5) for mode, s in per_query.items()}


def _parent_scores(parent: ModelVersion, validation: LabelSet) -> dict[str, dict[str, float]]:
    searcher = Searcher(candidates=current_app.config["SEARCH_CANDIDATES"])
    products = db.session.scalars(select(Product).where(Product.is_active)).all()
    searcher.apply_changes([product_card(p) for p in products], [])
    searcher.attach(load_bundle(parent.artifact_path, parent.id, retrieval_mode=parent.retrieval_mode))
    return validation_scores(searcher, validation)


def learned_heads(losses: list[dict], weights: LossWeights, inherited: Iterable[str]) -> tuple[str, ...]:
    """The heads worth serving: those that learned in this run (a step logged their task's loss with a
    positive weight) plus those the parent's had learned before."""
    learned = {name for name in HEAD_NAMES if getattr(weights, name) > 0 and any(name in step for step in losses)}
    return trained_names(learned | set(inherited))


def checkpoint_dir(job_id: int, run_key: str = "") -> Path:
    """Where a run's training checkpoints live (kept across worker restarts, removed when it ends).

    run_key tells apart the runs of one job (a tuning study's trials, keyed by their settings).
    """
    root = current_app.config["FINE_TUNE_CHECKPOINT_DIR"] or Path(current_app.config["INSTANCE_DIR"]) / "checkpoints"
    return Path(root) / (f"fine_tune-job{job_id}-{run_key}" if run_key else f"fine_tune-job{job_id}")


def run_fine_tune(job_id: int, created_at: datetime, params: Mapping, hooks: Hooks, run_key: str = "") -> dict:
    """The whole run for one job; raises FineTuneRefused with a clear reason when nothing is published."""
    settings = RunSettings.from_config(current_app.config, params)
    parent = db.session.get(ModelVersion, params.get("parent_version_id"))
    if parent is None or parent.status not in ("ready", "active", "retired"):
        raise FineTuneRefused(f"parent version {params.get('parent_version_id')} is missing or not built")
    labels = split_labels()
    if labels is None:
        raise FineTuneRefused("no labelled validation queries (RANKER_QRELS): the gate could not judge a new model")
    loaded = load_model_version(parent.artifact_path)  # 1
    hooks.log(f"parent v{parent.id} loaded from {parent.artifact_path}")
    since = created_at - timedelta(days=settings.window_days)
    log = export_feedback(since, created_at, settings.dataset.max_position)  # 2
    hooks.log(
        f"feedback {since:%Y-%m-%d %H:%M} to {created_at:%Y-%m-%d %H:%M}: {len(log.searches)} searches, "
        f"{len(log.impressions)} impressions, {len(log.events)} events, {len(log.products)} products"
    )
    click_model = uniform_model(settings.dataset.max_position)
    if settings.correction == "ips":
        fitted = fit_pbm(*click_rows(log, settings.dataset.max_position), settings.dataset.max_position)
        click_model = identified_or_curve(fitted, current_app.config["PROPENSITY_FALLBACK_POWER"])
    summary = click_model.as_dict()
    hooks.log(
        f"click model ({settings.correction}, {summary['source']}): propensities {summary['propensities'][:10]}"
        + (f"; identification {summary['identification']}" if "identification" in summary else "")
    )
    held_out = [q.text for q in labels["held_out"].queries]
    data = build_dataset(log, click_model.propensity, created_at, settings.dataset, exclude_queries=held_out)  # 3
    hooks.log(f"dataset: {dict(sorted(data.counts.items()))}")
    if data.positives < settings.min_positive_pairs:
        raise FineTuneRefused(
            f"too little feedback: {data.positives} positive (query, product) pairs from {len(log.searches)} "
            f"searches in the last {settings.window_days:g} days; at least {settings.min_positive_pairs} are needed",
            hint=feedback_hint(settings.min_positive_pairs, settings.window_days),
        )
    hooks.progress(50, 1000)
    parent_scores = _parent_scores(parent, labels["validation"])  # 4
    before = means(parent_scores)
    hooks.log(f"before (v{parent.id}): {before}")
    hooks.progress(100, 1000)
    categories = data.categories if settings.train.loss.category > 0 else ()
    model, config = with_categories(loaded.model, loaded.config, categories, settings.train.seed)
    config = dataclasses.replace(config, loss=settings.train.loss)
    result = fine_tune(  # 5
        model,
        loaded.tokenizer,
        data,
        settings.train,
        checkpoint_dir=checkpoint_dir(job_id, run_key),
        should_stop=hooks.should_stop,
        log=hooks.log,
        progress=lambda done, total: hooks.progress(100 + int(600 * done / max(total, 1)), 1000),
    )
    training = {
        "steps": result.steps,
        "planned_steps": result.planned_steps,
        "resumed_from": result.resumed_from,
        "stopped": result.stopped,
        "pairs_per_second": round(result.pairs_per_second, 2),
        "trainable_parameters": result.trainable_parameters,
        "final_loss": result.losses[-1]["total"] if result.losses else None,
        "settings": settings.train.to_dict(),
        "correction": settings.correction,
        "click_model": click_model.as_dict(),
        "data": dict(data.counts),
    }
    if result.stopped == "cancelled":
        shutil.rmtree(checkpoint_dir(job_id, run_key), ignore_errors=True)
        return {"cancelled": True, "training": training, "before": before}
    version_id = hooks.recall("version_id")  # 6: a restarted run rebuilds the version it created
    version = db.session.get(ModelVersion, version_id) if version_id else None
    if version is None or version.status != "building":
        name = f"fine-tune of v{parent.id} (job {job_id}{', ' + run_key if run_key else ''})"
        version = create_version(name, parent.retrieval_mode, parent.id)
        hooks.remember("version_id", version.id)
    hooks.log(f"building v{version.id}: re-embedding the catalog, ONNX export, publishing")
    after: dict[str, float] = {}
    verdict: dict = {}

    def gate(searcher: Searcher, metrics: dict) -> None:
        if hooks.should_stop():
            raise FineTuneRefused(f"cancelled by an admin before v{version.id} was published")
        child_scores = validation_scores(searcher, labels["validation"])
        after.update(means(child_scores))
        hooks.log(f"after (v{version.id}): {after}")
        mode = settings.gate_mode
        test = paired_bootstrap(child_scores[mode], parent_scores[mode], settings.gate_margin)
        verdict.update(mode=mode, parent_version_id=parent.id, **test.as_dict())
        metrics["gate"] = dict(verdict)
        hooks.log(f"gate ({mode}, child vs v{parent.id}): {test.describe()}: {'passed' if test.passed else 'refused'}")
        if not test.passed:
            raise FineTuneRefused(
                f"gate: validation NDCG@10 ({mode}) of v{version.id} may be worse than v{parent.id} by more than "
                f"the margin: {test.describe()}; v{version.id} not published"
            )

    heads = learned_heads(result.losses, config.loss, heads_in(Path(parent.artifact_path) / HEADS_FILE))
    summary = {
        "training": training,
        "before": before,
        "after": after,
        "gate": verdict,
        "parent_version_id": parent.id,
        "heads": heads,
    }
    try:
        built = build_version(
            version.id,
            lambda done, total: hooks.progress(700 + int(300 * done / max(total, 1)), 1000),
            trained=(result.model, loaded.tokenizer, config),
            trained_heads=heads,
            gate=gate,
            activate_if_none=False,
        )
    except FineTuneRefused as exc:
        db.session.rollback()
        version = db.session.get(ModelVersion, version.id)
        version.status, version.metrics = "failed", {**summary, "error": str(exc)}
        db.session.commit()
        shutil.rmtree(checkpoint_dir(job_id, run_key), ignore_errors=True)
        raise
    version = db.session.get(ModelVersion, version.id)  # 7
    version.metrics = {**version.metrics, "fine_tune": summary}
    db.session.commit()
    shutil.rmtree(checkpoint_dir(job_id, run_key), ignore_errors=True)
    return {"version_id": version.id, "status": built["status"], **summary}
