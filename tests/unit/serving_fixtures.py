"""Real model version directories from a tiny randomly initialised encoder, for serving tests.

A version directory is built the way worker/building/version_build.py builds one (ONNX
query encoder, product embeddings from the torch encoder, vector files, manifest last);
only the ONNX export, the slow step, is done once per session and copied per directory.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.modeling.encoder import SentenceEncoder, tiny_encoder
from engine.modeling.export import export_query_encoder
from engine.modeling.inference import embed_texts
from engine.serving.bundle import MANIFEST, PRODUCT_MAX_LENGTH, RANKER, write_manifest
from engine.serving.ranker import LinearRanker
from engine.serving.searcher import ProductCard, card_text
from engine.serving.vectors import VectorIndex

QUERY_MAX_LENGTH = 32


@dataclass(frozen=True)
class TinyModel:
    """The tiny encoder, its tokenizer and one ONNX export of it (shared, read-only)."""

    encoder: SentenceEncoder
    tokenizer: object
    onnx_dir: Path


@functools.cache
def tiny_model() -> TinyModel:
    """The session's tiny model, exported to ONNX on first use."""
    encoder, tokenizer = tiny_encoder(seed=7)
    encoder.eval()
    onnx_dir = Path(tempfile.mkdtemp(prefix="kairos-tiny-onnx-"))
    atexit.register(shutil.rmtree, onnx_dir, True)
    export_query_encoder(encoder, tokenizer, onnx_dir, max_length=QUERY_MAX_LENGTH)
    return TinyModel(encoder=encoder, tokenizer=tokenizer, onnx_dir=onnx_dir)


def copy_export(directory: Path) -> None:
    """Put the session's ONNX export files into directory (what export_query_encoder writes)."""
    directory.mkdir(parents=True, exist_ok=True)
    for file in tiny_model().onnx_dir.iterdir():
        shutil.copyfile(file, directory / file.name)


def build_version_dir(
    path: str | Path,
    cards: Sequence[ProductCard],
    retrieval_mode: str = "hybrid",
    serve_variant: str = "fp32",
    ranker: LinearRanker | None = None,
) -> Path:
    """A complete, loadable version directory holding the embeddings of these cards."""
    model = tiny_model()
    directory = Path(path)
    copy_export(directory)
    matrix = embed_texts(
        model.encoder, model.tokenizer, [card_text(c) for c in cards], max_length=PRODUCT_MAX_LENGTH, device="cpu"
    )
    vectors = VectorIndex(model.encoder.dim)
    vectors.build([c.id for c in cards], matrix)
    vectors.save(directory)
    if ranker is not None:
        ranker.save(directory / RANKER)
    write_manifest(directory, retrieval_mode, {"serve_variant": serve_variant, "products": len(cards)})
    assert (directory / MANIFEST).is_file()
    return directory


def card(
    product_id: int,
    title: str,
    brand: str = "Acme",
    price: float | None = 10.0,
    rating: float | None = 4.0,
    rating_count: int = 10,
) -> ProductCard:
    """A product card with only the fields the serving tests vary."""
    return ProductCard(
        id=product_id,
        external_id=f"E{product_id}",
        title=title,
        brand=brand,
        price=price,
        rating=rating,
        rating_count=rating_count,
    )
