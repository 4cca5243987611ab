"""ONNX export of the query tower, checked against torch on a tiny encoder."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.modeling.encoder import tiny_encoder
from engine.modeling.export import OUTPUT_NAME, QueryTower, export_query_encoder, verify_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    encoder, tokenizer = tiny_encoder(seed=1)
    encoder.train()  # export must not depend on (or change) the caller's mode
    files = export_query_encoder(encoder, tokenizer, tmp_path_factory.mktemp("onnx"), max_length=48)
    assert encoder.training
    return encoder.eval(), tokenizer, files


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def padded_batch(lengths: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] word pieces [SEP] of the given total lengths, right-padded with 0."""
    width = max(lengths)
    ids = np.zeros((len(lengths), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1000, 29000, size=length)
        ids[row, 0] = 101
        if length > 1:
            ids[row, length - 1] = 102
        mask[row, :length] = 1
    return ids, mask


def torch_embed(encoder, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return encoder(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()


def cosines(expected: np.ndarray, got: np.ndarray) -> np.ndarray:
    return np.sum(expected * got, axis=1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(got, axis=1)


def test_files_and_metadata(exported):
    encoder, tokenizer, files = exported
    meta = json.loads(files.meta.read_text())
    assert meta["inputs"] == ["input_ids", "attention_mask"]
    assert meta["dim"] == encoder.dim and meta["max_length"] == 48 and meta["pad_id"] == tokenizer.pad_token_id
    assert meta["verified_min_cosine"] >= 0.999
    assert files.tokenizer.is_file() and files.int8 is not None and files.int8.is_file()
    graph = session(files.fp32)
    assert [i.name for i in graph.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.get_outputs()] == [OUTPUT_NAME]
    # Both axes stay symbolic, so any batch size and query length are accepted.
    assert all(isinstance(d, str) for d in graph.get_inputs()[0].shape)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_fp32_matches_torch_for_every_length(exported, batch_size):
    encoder, _, files = exported
    graph = session(files.fp32)
    rng = np.random.default_rng(batch_size)
    worst = 1.0
    for length in range(1, 41):
        # The row under test has `length` tokens; the others vary so padding varies too.
        lengths = [length, *rng.integers(1, 41, size=batch_size - 1).tolist()]
        ids, mask = padded_batch(lengths, rng)
        got = graph.run([OUTPUT_NAME], {"input_ids": ids, "attention_mask": mask})[0]
        worst = min(worst, float(cosines(torch_embed(encoder, ids, mask), got).min()))
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert worst >= 0.999


def test_int8_runs_and_stays_close(exported):
    encoder, tokenizer, files = exported
    assert files.int8.stat().st_size < files.fp32.stat().st_size
    ops = [node.op_type for node in onnx.load(str(files.int8)).graph.node]
    # Every weight MatMul (q, k, v, out, two feed-forward per layer) is int8; only the two
    # activation-by-activation products of attention stay float.
    layers = encoder.transformer.config.num_hidden_layers
    assert ops.count("MatMulInteger") == 6 * layers and ops.count("MatMul") == 2 * layers
    graph = session(files.int8)
    texts = ["", "tv", "usb c cable", "kids waterproof winter boots with warm lining", "organic green tea " * 8]
    for batch_size in (1, 3, 5):
        batch = tokenizer(texts[:batch_size], padding=True, truncation=True, max_length=48, return_tensors="np")
        ids, mask = batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64)
        got = graph.run([OUTPUT_NAME], {"input_ids": ids, "attention_mask": mask})[0]
        assert cosines(torch_embed(encoder, ids, mask), got).min() >= 0.95


def test_verification_catches_a_graph_that_is_not_the_model(exported):
    _, tokenizer, files = exported
    other, _ = tiny_encoder(seed=2)
    tower = QueryTower(other.eval(), with_token_type_ids=False)
    assert verify_onnx(tower, tokenizer, files.fp32, ["input_ids", "attention_mask"], 48) < 0.9
