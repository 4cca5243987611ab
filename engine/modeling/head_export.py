"""Export of the click and purchase heads for serving without torch: their weights (heads.npz)
and the same heads as an ONNX graph (heads.onnx, engine.serving.heads_onnx) that serving runs.

Only heads that learned something are exported: a head is as the learning loop left it
only after a fine-tune saw labels for its task. The zero-shot version's heads are random
initial weights; serving them would feed the ranker noise that it might fit to, so that
version gets no heads.npz and its click and purchase columns stay 0, as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from torch import nn

from engine.modeling.heads import MultiTaskModel, PairHead
from engine.serving.heads import HEADS_FILE, LAYER_KEYS, PairHeadWeights, arrays_for, trained_names
from engine.serving.heads_onnx import write_heads_onnx


def _layers(head: PairHead) -> dict[str, np.ndarray]:
    net = head.net
    # The numpy forward pass mirrors this exact stack; refuse anything else rather than serve
    # numbers that disagree with training.
    shape = [type(m) for m in net]
    if shape != [nn.Linear, nn.GELU, nn.Dropout, nn.Linear] or net[1].approximate != "none":
        raise ValueError(f"PairHead layers changed ({shape}); update engine/serving/heads.py to match")
    state = net.state_dict()
    return {key: state[key].detach().float().cpu().numpy() for key in LAYER_KEYS}


def export_pair_heads(model: MultiTaskModel, directory: str | Path, names: Iterable[str]) -> Path | None:
    """Write the named heads ("click", "purchase") to directory/heads.npz and heads.onnx; nothing
    when names is empty.

    Returns the heads.npz written, or None. Each file is replaced atomically.
    """
    chosen = trained_names(names)
    if not chosen:
        return None
    modules = {"click": model.click_head, "purchase": model.purchase_head}
    layers = {name: _layers(modules[name]) for name in chosen}
    write_heads_onnx({name: PairHeadWeights(*(layers[name][key] for key in LAYER_KEYS)) for name in chosen}, directory)
    arrays = arrays_for(layers)
    path = Path(directory) / HEADS_FILE
    tmp = path.with_name(f".{HEADS_FILE}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)
    return path
