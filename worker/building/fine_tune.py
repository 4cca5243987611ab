"""Fine-tune a model version on recent feedback and publish it through the build pipeline.

1. load the parent version; 2. export the feedback window (it ends when the job was
created, so a resumed run rebuilds the same data) and fit the click model; 3. build the
labelled pairs, holding out every validation and test query; 4. evaluate the parent on
the validation slice of the train half (and the test half, reported only); 5. fine-tune
with checkpoints in a directory keyed by the job; 6. build the child version (re-embed,
export ONNX, choose int8, fit the ranker) and, before it is published, evaluate it on the
same slice: the gate refuses it when validation NDCG@10 falls by more than the margin;
7. the child is 'ready', never active: an admin or an A/B test decides.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from engine.evaluation.judgments import is_esci_json, read_esci_judgments, read_esci_queries
from engine.evaluation.split import load_split
from engine.modeling.config import LossWeights
from engine.modeling.io import load_model_version
from engine.serving.bundle import load_bundle
from engine.serving.heads import HEAD_NAMES, HEADS_FILE, heads_in, trained_names
from engine.serving.searcher import Searcher
from engine.training.click_model import fit_pbm, uniform_model
from engine.training.dataset import DatasetConfig, build_dataset, click_rows
from engine.training.finetune import FineTuneConfig, fine_tune
from engine.training.params import with_categories
from webapp.extensions import db
from webapp.models import ModelVersion, Product
from webapp.services.feedback_export import export_feedback
from webapp.services.model_versions import create_version
from webapp.services.search_index import product_card
from worker.building.selection import LabelSet, ndcg
from worker.building.version_build import build_version

VALIDATION_SEED = "kairos-validation-1"
MODES = ("dense", "rrf")


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
    gate_margin: float = 0.01  # absolute NDCG@10 drop on validation that still publishes
    gate_mode: str = "rrf"
    validation_fraction: float = 0.3
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
            gate_mode=params.get("gate_mode", "rrf"),
            validation_fraction=float(params.get("validation_fraction", 0.3)),
            train=FineTuneConfig.from_dict(train),
            dataset=DatasetConfig(**params.get("dataset", {})),
        )
        if settings.correction not in ("ips", "none") or settings.gate_mode not in MODES:
            raise ValueError("correction must be ips or none, gate_mode dense or rrf")
        return settings


@dataclass
class Hooks:
    """How the run reports to its job row and learns that it should stop."""

    log: Callable[[str], None]
    progress: Callable[[int, int], None]
    should_stop: Callable[[], bool]
    remember: Callable[[str, object], None]  # keep a value on the job row (survives a restart)
    recall: Callable[[str], object]


def split_labels(fraction: float) -> dict[str, LabelSet] | None:
    """Validation (a seeded slice of the train half) and test labels, or None without ESCI judgments."""
    path = current_app.config["RANKER_QRELS"]
    if not path or not Path(path).is_file() or not is_esci_json(path):
        return None
    judgments, split = read_esci_judgments(path), load_split()
    train = [q for q in read_esci_queries(path) if q.text in split.texts("train")]
    test = [q for q in read_esci_queries(path) if q.text in split.texts("test")]
    key = lambda q: hashlib.sha256(f"{VALIDATION_SEED}\n{q.text}".encode()).hexdigest()  # noqa: E731
    validation = sorted(train, key=key)[: max(1, round(len(train) * fraction))] if train else []
    if not validation:
        return None
    return {"validation": LabelSet(validation, judgments), "test": LabelSet(test, judgments)}


def scores(searcher: Searcher, labels: dict[str, LabelSet]) -> dict[str, float]:
    """NDCG@10 per label set and retrieval mode."""
    return {
        f"{name}_ndcg10_{mode}": round(ndcg(searcher, label_set, mode), 5)
        for name, label_set in labels.items()
        if label_set.queries
        for mode in MODES
    }


def _parent_scores(parent: ModelVersion, labels: dict[str, LabelSet]) -> dict[str, float]:
    searcher = Searcher(candidates=current_app.config["SEARCH_CANDIDATES"])
    products = db.session.scalars(select(Product).where(Product.is_active)).all()
    searcher.apply_changes([product_card(p) for p in products], [])
    searcher.attach(load_bundle(parent.artifact_path, parent.id, retrieval_mode=parent.retrieval_mode))
    return scores(searcher, labels)


def learned_heads(losses: list[dict], weights: LossWeights, inherited: Iterable[str]) -> tuple[str, ...]:
    """The heads worth serving: those that learned in this run (a step logged their task's loss with a
    positive weight) plus those the parent's had learned before."""
    learned = {name for name in HEAD_NAMES if getattr(weights, name) > 0 and any(name in step for step in losses)}
    return trained_names(learned | set(inherited))


def checkpoint_dir(job_id: int) -> Path:
    """Where a job's training checkpoints live (kept across worker restarts, removed when it ends)."""
    root = current_app.config["FINE_TUNE_CHECKPOINT_DIR"] or Path(current_app.config["INSTANCE_DIR"]) / "checkpoints"
    return Path(root) / f"fine_tune-job{job_id}"


def run_fine_tune(job_id: int, created_at: datetime, params: Mapping, hooks: Hooks) -> dict:
    """The whole run for one job; raises FineTuneRefused with a clear reason when nothing is published."""
    settings = RunSettings.from_config(current_app.config, params)
    parent = db.session.get(ModelVersion, params.get("parent_version_id"))
    if parent is None or parent.status not in ("ready", "active", "retired"):
        raise FineTuneRefused(f"parent version {params.get('parent_version_id')} is missing or not built")
    labels = split_labels(settings.validation_fraction)
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
        click_model = fit_pbm(*click_rows(log, settings.dataset.max_position), settings.dataset.max_position)
    hooks.log(f"click model ({settings.correction}): propensities {click_model.as_dict()['propensities'][:10]}")
    held_out = [q.text for label_set in labels.values() for q in label_set.queries]
    data = build_dataset(log, click_model.propensity, created_at, settings.dataset, exclude_queries=held_out)  # 3
    hooks.log(f"dataset: {dict(sorted(data.counts.items()))}")
    if data.positives < settings.min_positive_pairs:
        raise FineTuneRefused(
            f"too little feedback: {data.positives} positive (query, product) pairs from {len(log.searches)} "
            f"searches in the last {settings.window_days:g} days; at least {settings.min_positive_pairs} are needed",
            hint=feedback_hint(settings.min_positive_pairs, settings.window_days),
        )
    hooks.progress(50, 1000)
    before = _parent_scores(parent, labels)  # 4
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
        checkpoint_dir=checkpoint_dir(job_id),
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
        shutil.rmtree(checkpoint_dir(job_id), ignore_errors=True)
        return {"cancelled": True, "training": training, "before": before}
    version_id = hooks.recall("version_id")  # 6: a restarted run rebuilds the version it created
    version = db.session.get(ModelVersion, version_id) if version_id else None
    if version is None or version.status != "building":
        version = create_version(f"fine-tune of v{parent.id} (job {job_id})", parent.retrieval_mode, parent.id)
        hooks.remember("version_id", version.id)
    hooks.log(f"building v{version.id}: re-embedding the catalog, ONNX export, publishing")
    after: dict[str, float] = {}

    def gate(searcher: Searcher, metrics: dict) -> None:
        if hooks.should_stop():
            raise FineTuneRefused(f"cancelled by an admin before v{version.id} was published")
        after.update(scores(searcher, labels))
        key = f"validation_ndcg10_{settings.gate_mode}"
        hooks.log(f"after (v{version.id}): {after}")
        if after[key] < before[key] - settings.gate_margin:
            raise FineTuneRefused(
                f"gate: validation NDCG@10 ({settings.gate_mode}) fell from {before[key]:.4f} to {after[key]:.4f}, "
                f"more than the margin {settings.gate_margin}; v{version.id} not published"
            )

    heads = learned_heads(result.losses, config.loss, heads_in(Path(parent.artifact_path) / HEADS_FILE))
    summary = {"training": training, "before": before, "after": after, "parent_version_id": parent.id, "heads": heads}
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
        shutil.rmtree(checkpoint_dir(job_id), ignore_errors=True)
        raise
    version = db.session.get(ModelVersion, version.id)  # 7
    version.metrics = {**version.metrics, "fine_tune": summary}
    db.session.commit()
    shutil.rmtree(checkpoint_dir(job_id), ignore_errors=True)
    return {"version_id": version.id, "status": built["status"], **summary}
