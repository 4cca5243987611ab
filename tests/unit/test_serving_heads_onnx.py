"""The heads as an ONNX graph (engine.serving.heads_onnx) against the numpy pass, and which of the
two a version is served with (engine.serving.heads.load_heads)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.serving.heads import (
    HEADS_FILE,
    HeadsError,
    PairHeads,
    PairHeadWeights,
    arrays_for,
    load_heads,
)
from engine.serving.heads_onnx import HEADS_ONNX, OnnxPairHeads, write_heads_onnx

DIM = 8


def random_heads(seed: int, hidden: tuple[int, int] = (16, 12)) -> dict[str, PairHeadWeights]:
    """Two heads of different widths, first layers large enough that GELU sees its whole curve."""
    rng = np.random.default_rng(seed)
    return {
        name: PairHeadWeights(
            rng.normal(0, 2.0, (size, 4 * DIM)).astype(np.float32),
            rng.normal(0, 0.5, size).astype(np.float32),
            rng.normal(0, 1.0, (1, size)).astype(np.float32),
            rng.normal(0, 0.5, 1).astype(np.float32),
        )
        for name, size in zip(("click", "purchase"), hidden, strict=True)
    }


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_npz(directory, heads: dict[str, PairHeadWeights]) -> None:
    keys = ("0.weight", "0.bias", "3.weight", "3.bias")
    layers = {name: dict(zip(keys, (h.weight1, h.bias1, h.weight2, h.bias2), strict=True)) for name, h in heads.items()}
    np.savez(directory / HEADS_FILE, **arrays_for(layers))


def test_onnx_heads_equal_the_numpy_pass_on_a_tiny_random_head(tmp_path):
    heads = random_heads(seed=7)
    onnx_heads = OnnxPairHeads(write_heads_onnx(heads, tmp_path))
    numpy_heads = PairHeads(heads)
    assert onnx_heads.names == numpy_heads.names == ("click", "purchase") and onnx_heads.dim == DIM
    rng = np.random.default_rng(1)
    for n in (1, 5, 50):
        query, products = unit(rng, 1)[0], unit(rng, n)
        expected, got = numpy_heads.probabilities(query, products), onnx_heads.probabilities(query, products)
        for name in heads:
            assert got[name].shape == (n,)
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)
    spread = np.concatenate([expected[name] for name in heads])  # the last, 50 products
    assert spread.min() < 0.1 and spread.max() > 0.5  # the heads are not flat: the check can fail
    assert all(v.shape == (0,) for v in onnx_heads.probabilities(unit(rng, 1)[0], np.empty((0, DIM))).values())


def test_a_version_with_heads_onnx_is_served_by_onnxruntime_and_an_older_one_by_numpy(tmp_path):
    heads = random_heads(seed=3)
    write_npz(tmp_path, heads)
    assert isinstance(load_heads(tmp_path), PairHeads)  # built before heads.onnx existed
    write_heads_onnx(heads, tmp_path)
    served = load_heads(tmp_path)
    assert isinstance(served, OnnxPairHeads)
    rng = np.random.default_rng(2)
    query, products = unit(rng, 1)[0], unit(rng, 9)
    np.testing.assert_allclose(
        served.probabilities(query, products)["purchase"],
        PairHeads(heads).probabilities(query, products)["purchase"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_heads_onnx_that_disagrees_with_heads_npz_is_refused(tmp_path):
    write_npz(tmp_path, random_heads(seed=3))
    write_heads_onnx({"click": random_heads(seed=4)["click"]}, tmp_path)
    with pytest.raises(HeadsError, match=HEADS_ONNX):
        load_heads(tmp_path)
