"""Embed a list of products with a model version's encoder and merge them into its stored vectors.

A version build embeds the whole catalog once. Products imported or edited afterwards are
embedded in process by every web worker, but only in its memory. This keeps the version's
files in step too, so a worker that loads the version later (a restart, a new machine, a
rollback) starts from current vectors: at load a worker embeds only the products the files
lack, so without this it would embed every product added since the build at boot, and would
serve an edited product by its old text.

1. read the products (ids no longer active are dropped from the vectors); 2. load the
version's torch encoder (GPU when present); 3. embed in length-sorted batches, as the build
does, from the same product text; 4. merge into the version's vectors with one rename.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from sqlalchemy import select

from engine.modeling.inference import embed_texts
from engine.modeling.io import load_model_version
from engine.serving.bundle import PRODUCT_MAX_LENGTH
from engine.serving.searcher import card_text
from engine.serving.vectors import merge_saved
from webapp.extensions import db
from webapp.models import ModelVersion, Product
from webapp.services.search_index import product_card
from worker.building.version_build import progress_phase

Progress = Callable[[int, int], None]
# A version in these states has complete artifacts a web worker may load (now or after a rollback).
EMBEDDABLE = ("ready", "active", "retired")
ID_CHUNK = 500  # ids per IN (...) query: far below every database's parameter limit


def _active_products(ids: Sequence[int]) -> list[Product]:
    products: list[Product] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        products += db.session.scalars(select(Product).where(Product.id.in_(chunk), Product.is_active)).all()
    return sorted(products, key=lambda p: p.id)


def embed_products(version_id: int, product_ids: Iterable[int], progress: Progress, batch_size: int = 64) -> dict:
    """Embed these products into the version's stored vectors; re-running gives the same files."""
    version = db.session.get(ModelVersion, version_id)
    if version is None or version.status not in EMBEDDABLE:
        # A version still building embeds the whole catalog itself; a failed one never serves.
        return {"skipped": f"version {version_id} is {getattr(version, 'status', 'missing')}"}
    wanted = sorted({int(i) for i in product_ids})
    products = _active_products(wanted)  # 1
    found = {p.id for p in products}
    gone = [i for i in wanted if i not in found]  # deleted or deactivated: their vectors go
    progress(20, 1000)
    matrix = np.empty((0, 0), dtype=np.float32)
    if products:
        loaded = load_model_version(version.artifact_path)  # 2
        progress(50, 1000)
        matrix = embed_texts(  # 3
            loaded.model,
            loaded.tokenizer,
            [card_text(product_card(p)) for p in products],
            batch_size=batch_size,
            max_length=PRODUCT_MAX_LENGTH,
            progress=progress_phase(progress, 0.05, 0.95),
        )
    merged = merge_saved(version.artifact_path, [p.id for p in products], matrix, removed=gone)  # 4
    progress(1000, 1000)
    return {"version_id": version_id, "embedded": len(products), **merged}
