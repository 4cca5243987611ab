"""Build a model version end to end, in numbered steps, publishing atomically.

1. read the active catalog; 2. load the encoder (packaged MiniLM, or the parent version);
3. export the query tower to ONNX (fp32 + int8, verified against torch) and the trained
click/purchase heads to numpy (heads.npz, for the ranker's columns); 4. embed every
product in length-sorted batches (GPU when present); 5. on the train half of the labelled
queries, choose int8 or fp32 and fit the ranker; 6. write the manifest last and rename the
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

from engine.evaluation.judgments import is_esci_json, read_esci_judgments, read_esci_queries
from engine.evaluation.probe import PROBE_METRIC, load_probe, probe_ndcg
from engine.evaluation.split import load_split
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
from worker.building.selection import LabelSet, choose_variant, fit_ranker, ndcg

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildSettings:
    batch_size: int = 64
    query_max_length: int = 32
    product_max_length: int = PRODUCT_MAX_LENGTH


def _labels(path: str | None, split: str) -> LabelSet | None:
    """Labelled queries of one split half, or None when no usable judgments are configured."""
    if not path or not Path(path).is_file() or not is_esci_json(path):
        return None
    judgments = read_esci_judgments(path)
    keep = load_split().texts(split)
    return LabelSet([q for q in read_esci_queries(path) if q.text in keep], judgments)


def progress_phase(progress: Progress, start: float, end: float) -> Progress:
    """Map a step's own (done, total) onto its share of the whole job."""
    return lambda done, total: progress(int(1000 * (start + (end - start) * done / max(total, 1))), 1000)


def _select(
    tmp: Path, version_id: int, searcher: Searcher, vectors: VectorIndex, heads: PairHeads | None
) -> tuple[dict, str, bool]:
    """Step 5: int8-or-fp32 and the ranker, chosen on the train half; the test half only reported.

    The ranker is fitted with the heads' predictions in its click and purchase columns, exactly
    as serving will fill them.
    """
    train = _labels(current_app.config["RANKER_QRELS"], "train")
    if train is None or not train.queries:
        return {"note": "no labelled queries: fp32 encoder, RRF fusion"}, "fp32", False

    def attach(variant: str, ranker=None) -> None:
        searcher.bundle = ServingBundle(
            version_id, "hybrid", tmp, OnnxQueryEncoder(tmp, variant=variant), vectors, ranker, heads
        )

    variant, metrics = choose_variant(searcher, train, attach)
    attach(variant)
    ranker = fit_ranker(searcher, train)
    rrf_train = ndcg(searcher, train, "rrf")
    use_ranker = False
    if ranker is not None:
        attach(variant, ranker)
        ranker_train = ndcg(searcher, train, "hybrid")
        use_ranker = ranker_train > rrf_train  # the learned ranker must earn its place on validation
        metrics.update(train_ndcg10_rrf=rrf_train, train_ndcg10_ranker=ranker_train)
        if use_ranker:
            ranker.save(tmp / RANKER)
    test = _labels(current_app.config["RANKER_QRELS"], "test")
    if test is not None:
        for mode in ("lexical", "dense", "rrf") + (("hybrid",) if use_ranker else ()):
            metrics[f"test_ndcg10_{mode}"] = ndcg(searcher, test, mode)
    return metrics, variant, use_ranker


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
        probe = load_probe(current_app.config["RANKER_QRELS"])
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
