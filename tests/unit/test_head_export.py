"""Exporting the trained click/purchase heads of a MultiTaskModel to heads.npz and heads.onnx."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.modeling.config import HeadConfig
from engine.modeling.head_export import export_pair_heads
from engine.modeling.heads import MultiTaskModel
from engine.serving.heads import HEADS_FILE, heads_in, load_heads
from engine.serving.heads_onnx import HEADS_ONNX, OnnxPairHeads


@pytest.fixture
def model(tiny_model) -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel(tiny_model.encoder, HeadConfig(mlp_hidden=8))


def test_only_the_named_heads_are_written_with_their_exact_weights(model, tmp_path):
    path = export_pair_heads(model, tmp_path, ["purchase", "category", "purchase"])
    assert path == tmp_path / HEADS_FILE and heads_in(path) == ("purchase",)
    with np.load(path) as data:
        state = model.purchase_head.net.state_dict()
        for key in ("0.weight", "0.bias", "3.weight", "3.bias"):
            assert np.array_equal(data[f"purchase.{key}"], state[key].numpy())
    served = load_heads(tmp_path)
    assert isinstance(served, OnnxPairHeads) and served.names == ("purchase",)
    assert sorted(p.name for p in tmp_path.iterdir()) == [HEADS_FILE, HEADS_ONNX]  # no temporary file left


def test_nothing_is_written_for_untrained_heads(model, tmp_path):
    assert export_pair_heads(model, tmp_path, []) is None
    assert list(tmp_path.iterdir()) == []


def test_a_head_the_numpy_pass_cannot_mirror_is_refused(model, tmp_path):
    model.click_head.net[1] = nn.GELU(approximate="tanh")
    with pytest.raises(ValueError, match="PairHead layers changed"):
        export_pair_heads(model, tmp_path, ["click"])
    assert not (tmp_path / HEADS_FILE).exists() and not (tmp_path / HEADS_ONNX).exists()
