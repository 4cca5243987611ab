"""Build a model version end to end, in numbered steps, publishing atomically.

1. read the active catalog; 2. load the encoder (packaged MiniLM, or the parent version);
3. export the query tower to ONNX (fp32 + int8, verified against torch) and the trained
click/purchase heads to numpy (heads.npz, for the ranker's columns); 4. embed every
product in length-sorted batches (GPU when present); 5. on the train half of the labelled
queries, choose int8 or fp32, fit the ranker, and choose on validation what serves; 6. write the manifest last and rename the
directory into place; only then does the row say ready.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from transformers import PreTrainedTokenizerBase

from engine.evaluation.label_sets import Halves, halves
from engine.evaluation.probe import PROBE_METRIC, load_probe, probe_ndcg
from engine.modeling.config import ModelConfig
from engine.modeling.encoder import load_pretrained
from engine.modeling.export import export_query_encoder
from engine.modeling.head_export import export_pair_heads
from engine.modeling.heads import MultiTaskModel
from engine.modeling.inference import embed_texts
from engine.modeling.io import load_model_version, save_model_version
from engine.serving.bundle import (
    PRODUCT_MAX_LENGTH,
    RANKER,
    BundleError,
    ServingBundle,
    load_bundle,
    write_manifest,
)
from engine.serving.heads import HEADS_FILE, PairHeads, heads_in, load_heads
from engine.serving.query_encoder import OnnxQueryEncoder
from engine.serving.searcher import Searcher, card_text
from engine.serving.vectors import VectorIndex
from webapp.extensions import db
from webapp.models import ModelVersion, Product, utcnow
from webapp.services.model_versions import active_version
from webapp.services.search_index import product_card
from worker.building.partials import remove_stale_partials, stale_after_seconds
from worker.building.selection import SINGLE, choose_pipeline, choose_variant, fit_ranker, per_query_ndcg

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildSettings:
    batch_size: int = 64
    query_max_length: int = 32
    product_max_length: int = PRODUCT_MAX_LENGTH


def progress_phase(progress: Progress, start: float, end: float) -> Progress:
    """Map a step's own (done, total) onto its share of the whole job."""
    return lambda done, total: progress(int(1000 * (start + (end - start) * done / max(total, 1))), 1000)


def build_labels() -> Halves | None:
    """The configured judgments by role (fit, validation, test), or None without usable ones."""
    config = current_app.config
    return halves(config["RANKER_QRELS"], config.get("RANKER_QUERIES") or None, config["INSTANCE_DIR"])


def _select(
    tmp: Path, version_id: int, searcher: Searcher, vectors: VectorIndex, heads: PairHeads | None
) -> tuple[dict, str, bool]:
    """Step 5: int8-or-fp32 on the train half; the ranker fitted on its fit part; what serves chosen on
    validation by paired tests (worker.building.selection). The test half is never read here.

    The ranker is fitted with the heads' predictions in its click and purchase columns, exactly
    as serving will fill them. The searcher is left serving the chosen pipeline.
    """
    labels = build_labels()
    if labels is None or not labels.validation.queries:
        return {"note": "no labelled queries: fp32 encoder, RRF fusion"}, "fp32", False

    def attach(variant: str, ranker=None) -> None:
        searcher.bundle = ServingBundle(
            version_id, "hybrid", tmp, OnnxQueryEncoder(tmp, variant=variant), vectors, ranker, heads
        )

    variant, metrics = choose_variant(searcher, labels.train, attach)
    attach(variant)
    scores = {mode: per_query_ndcg(searcher, labels.validation, mode) for mode in ("lexical", "dense", "rrf")}
    ranker = fit_ranker(searcher, labels.fit) if labels.fit.queries else None
    if ranker is not None:
        attach(variant, ranker)
        scores["ranker"] = per_query_ndcg(searcher, labels.validation, "hybrid")
    choice, tests = choose_pipeline(scores, current_app.config["SELECTION_MARGIN"])
    served = ranker if choice == "ranker" else SINGLE.get(choice)
    attach(variant, served)
    if served is not None:
        served.save(tmp / RANKER)
    means = {mode: round(sum(s.values()) / len(s), 5) for mode, s in scores.items()}
    metrics.update({f"validation_ndcg10_{mode}": means[mode] for mode in ("lexical", "dense", "rrf")})
    metrics.update(
        validation_ndcg10_hybrid=means[choice],  # what the hybrid mode serves
        validation_queries=len(labels.validation.queries),
        fit_queries=len(labels.fit.queries),
        served_pipeline=choice,
        selection={rival: test.as_dict() for rival, test in tests.items()},
    )
    if "ranker" in means:
        metrics["validation_ndcg10_ranker"] = means["ranker"]
    return metrics, variant, served is not None


# A model already in memory (a fine-tune's result): the module, its tokenizer and its config.
Trained = tuple[MultiTaskModel, PreTrainedTokenizerBase, ModelConfig]
# Called with the searcher serving the new artifacts and the build's metrics before anything is
# published; raising refuses the version (its directory is removed, the row stays 'building').
Gate = Callable[[Searcher, dict], None]


def build_version(
    version_id: int,
    progress: Progress,
    settings: BuildSettings | None = None,
    *,
    trained: Trained | None = None,
    trained_heads: Sequence[str] = (),
    gate: Gate | None = None,
    activate_if_none: bool = True,
) -> dict:
    """Build the artifacts of a version in 'building' and mark it ready (and active if none is).

    The encoder is `trained` when given, else the parent version's, else the packaged MiniLM.
    trained_heads names the heads of a `trained` model that learned from labels ("click",
    "purchase"); only those are served. A parent's model brings its parent's trained heads.
    """
    settings = settings or BuildSettings()
    version = db.session.get(ModelVersion, version_id)
    if version is None or version.status != "building":
        return {"skipped": f"version {version_id} is {getattr(version, 'status', 'missing')}"}
    target = Path(version.artifact_path)
    if target.exists():  # a worker died after an earlier attempt: never trust what it left
        shutil.rmtree(target)
    remove_stale_partials(target.parent, stale_after_seconds(current_app.extensions["celery"]))
    products = db.session.scalars(select(Product).where(Product.is_active).order_by(Product.id)).all()
    if not products:
        raise ValueError("the catalog has no active products to embed")
    cards = [product_card(p) for p in products]
    progress(10, 1000)
    if trained is not None:
        model, tokenizer, config = trained
        heads = tuple(trained_heads)
    elif version.parent_id:
        parent = db.session.get(ModelVersion, version.parent_id)
        loaded = load_model_version(parent.artifact_path)
        model, tokenizer, config = loaded.model, loaded.tokenizer, loaded.config
        heads = heads_in(Path(parent.artifact_path) / HEADS_FILE)
    else:
        encoder, tokenizer = load_pretrained()
        config = ModelConfig()
        model = MultiTaskModel(encoder, config.heads)
        heads = ()  # randomly initialised: no signal to serve (see engine.modeling.head_export)
    progress(50, 1000)
    metrics: dict = {}

    def write_artifacts(tmp: Path) -> None:
        export_query_encoder(model.encoder, tokenizer, tmp, max_length=settings.query_max_length)
        export_pair_heads(model, tmp, heads)
        progress(150, 1000)
        matrix = embed_texts(
            model,
            tokenizer,
            [card_text(c) for c in cards],
            batch_size=settings.batch_size,
            max_length=settings.product_max_length,
            progress=progress_phase(progress, 0.15, 0.85),
        )
        vectors = VectorIndex(matrix.shape[1])
        vectors.build([c.id for c in cards], matrix)
        vectors.save(tmp)
        searcher = Searcher(candidates=current_app.config["SEARCH_CANDIDATES"])
        searcher.apply_changes(cards, [])
        chosen, variant, _ = _select(tmp, version_id, searcher, vectors, load_heads(tmp))
        metrics.update(chosen, products=len(cards))
        probe = load_probe(
            current_app.config["RANKER_QRELS"],
            current_app.config.get("RANKER_QUERIES") or None,
            current_app.config["INSTANCE_DIR"],
        )
        if probe is not None and searcher.bundle is not None:  # activation measures it again (model_versions)
            metrics[PROBE_METRIC] = probe_ndcg(searcher, probe)
        if gate is not None:
            gate(searcher, metrics)
        progress(980, 1000)
        write_manifest(
            tmp,
            version.retrieval_mode,
            {
                "serve_variant": variant,
                "products": len(cards),
                "heads": list(heads_in(tmp / HEADS_FILE)),  # served click/purchase heads
                "built_at": utcnow().isoformat(),
            },
        )

    save_model_version(model, tokenizer, config, target, metrics=metrics, extra=write_artifacts)
    try:
        load_bundle(target, version_id)  # serve-ability is checked here once, not discovered by shoppers
    except BundleError as exc:
        version.status, version.metrics = "failed", {**metrics, "error": str(exc)}
        db.session.commit()
        raise
    version.status, version.metrics = "ready", metrics
    # The first version serves at once; later ones wait for an admin or an A/B test.
    if activate_if_none and active_version() is None:
        version.status, version.activated_at = "active", utcnow()
    db.session.commit()
    return {"version_id": version_id, "status": version.status, **metrics}
