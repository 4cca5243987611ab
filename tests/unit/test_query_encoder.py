"""The torch-free ONNX query encoder the web process uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.modeling.encoder import tiny_encoder, tokenize
from engine.modeling.export import export_query_encoder
from engine.serving.query_encoder import OnnxQueryEncoder

MAX_LENGTH = 16


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    encoder, tokenizer = tiny_encoder(seed=4)
    directory = tmp_path_factory.mktemp("version")
    export_query_encoder(encoder, tokenizer, directory, max_length=MAX_LENGTH)
    return directory, encoder.eval(), tokenizer


def test_matches_torch_and_is_normalised(model_dir):
    directory, encoder, tokenizer = model_dir
    queries = ["", "tv", "Wireless   Headphones", "kids waterproof winter boots size 12"]
    got = OnnxQueryEncoder(directory, variant="fp32").encode(queries)
    with torch.inference_mode():
        expected = encoder.encode_batch(tokenize(tokenizer, queries, MAX_LENGTH)).numpy()
    assert got.shape == (4, encoder.dim) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert np.min(np.sum(got * expected, axis=1)) >= 0.999


def test_batches_keep_input_order(model_dir):
    directory, _, _ = model_dir
    encoder = OnnxQueryEncoder(directory, variant="fp32", batch_size=2)
    queries = ["a much longer query about garden furniture", "tv", "", "usb cable", "tea"]
    together = encoder.encode(queries)
    alone = np.stack([encoder.encode([q])[0] for q in queries])
    assert np.allclose(together, alone, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_pads_per_batch_and_truncates(model_dir):
    directory, _, _ = model_dir
    encoder = OnnxQueryEncoder(directory, variant="int8")
    # MiniLM's tokenizer.json pads everything to 128 tokens; the encoder must not.
    assert len(encoder.tokenizer.encode("tv").ids) == 3
    long_text = " ".join(["boots"] * 200)
    assert len(encoder.tokenizer.encode(long_text).ids) == MAX_LENGTH
    truncated = " ".join(["boots"] * (MAX_LENGTH - 2))
    assert np.allclose(encoder.encode([long_text]), encoder.encode([truncated]), atol=1e-6)


def test_single_query_cache(model_dir):
    directory, _, _ = model_dir
    encoder = OnnxQueryEncoder(directory, variant="int8", cache_size=2)
    first = encoder.encode_query("Running Shoes")
    again = encoder.encode_query("  running   shoes ")  # same text to an uncased tokenizer
    assert again is first
    assert encoder.cache_stats().hits == 1 and encoder.cache_stats().misses == 1
    assert not first.flags.writeable  # cached arrays are shared between callers
    assert np.allclose(first, encoder.encode(["running shoes"])[0], atol=1e-6)
    encoder.encode_query("tea")
    encoder.encode_query("mug")  # evicts the least recently used: "running shoes"
    stats = encoder.cache_stats()
    assert stats.size == 2 and stats.max_size == 2 and stats.misses == 3
    encoder.encode_query("running shoes")
    assert encoder.cache_stats().misses == 4
    encoder.clear_cache()
    assert encoder.cache_stats().size == 0 and encoder.cache_stats().hits == 0


def test_empty_query_and_disabled_cache(model_dir):
    directory, _, _ = model_dir
    encoder = OnnxQueryEncoder(directory, variant="fp32", cache_size=0)
    vector = encoder.encode_query("")
    assert vector.shape == (encoder.dim,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-6)
    encoder.encode_query("")
    assert encoder.cache_stats().size == 0 and encoder.cache_stats().misses == 2


def test_unknown_variant_is_refused(model_dir):
    with pytest.raises(ValueError, match="variant"):
        OnnxQueryEncoder(model_dir[0], variant="fp16")


def test_serving_modules_do_not_import_torch():
    code = (
        "import sys, engine.serving.query_encoder, engine.serving.vectors; "
        "bad = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules); "
        "sys.exit(', '.join(bad) or None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
