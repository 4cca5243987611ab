"""The click and purchase heads as one ONNX graph (heads.onnx), run by onnxruntime at serving.

A version build writes it beside heads.npz (engine.modeling.head_export), from the same
weights: the forward pass of engine.serving.heads.PairHeads, with onnxruntime's own Gelu
(exact, erf) in place of the numpy one. Every head's first layer is one matrix, cut into
the blocks that read q, p, q*p and |q-p|, so q*p and |q-p| are never concatenated; the
second layers are one block-diagonal matrix, so the graph answers every head at once.

Versions built before heads.onnx existed keep the numpy pass (engine.serving.heads.load_heads
chooses). Building the graph needs the `onnx` package (the build worker has it); running it,
only onnxruntime, which the web process already has for the query encoder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engine.serving.heads import PairHeadWeights

HEADS_ONNX = "heads.onnx"
OPSET = 20  # the first with Gelu
_INPUTS = ("query", "products")
_OUTPUT = "probabilities"  # (n, number of heads), in the order of the names metadata


def heads_model(heads: Mapping[str, PairHeadWeights]) -> bytes:
    """The serialized ONNX model answering every head's probability for (query (dim,), products (n, dim))."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    names = list(heads)
    dim = next(iter(heads.values())).dim
    w1 = np.concatenate([h.weight1 for h in heads.values()]).T.astype(np.float32)  # (4*dim, hidden)
    hidden = w1.shape[1]
    w2 = np.zeros((hidden, len(names)), dtype=np.float32)
    start = 0
    for column, head in enumerate(heads.values()):
        size = head.bias1.shape[0]
        w2[start : start + size, column] = head.weight2[0]
        start += size
    constants = {
        "w_q": w1[0:dim],
        "w_p": w1[dim : 2 * dim],
        "w_qp": w1[2 * dim : 3 * dim],
        "w_abs": w1[3 * dim : 4 * dim],
        "b1": np.concatenate([h.bias1 for h in heads.values()]).astype(np.float32),
        "w2": w2,
        "b2": np.array([h.bias2[0] for h in heads.values()], dtype=np.float32),
        "axes0": np.array([0], dtype=np.int64),
    }
    node = helper.make_node
    nodes = [
        node("Unsqueeze", ["query", "axes0"], ["q"]),  # (1, dim): broadcasts against (n, dim)
        node("MatMul", ["products", "w_p"], ["from_p"]),
        node("Mul", ["products", "q"], ["qp"]),
        node("MatMul", ["qp", "w_qp"], ["from_qp"]),
        node("Sub", ["q", "products"], ["diff"]),
        node("Abs", ["diff"], ["absdiff"]),
        node("MatMul", ["absdiff", "w_abs"], ["from_abs"]),
        node("MatMul", ["q", "w_q"], ["from_q"]),
        node("Add", ["from_q", "b1"], ["q_part"]),
        node("Add", ["from_p", "from_qp"], ["sum1"]),
        node("Add", ["sum1", "from_abs"], ["sum2"]),
        node("Add", ["sum2", "q_part"], ["first"]),
        node("Gelu", ["first"], ["hidden"], approximate="none"),
        node("MatMul", ["hidden", "w2"], ["out"]),
        node("Add", ["out", "b2"], ["logits"]),
        node("Sigmoid", ["logits"], [_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "kairos_pair_heads",
        [
            helper.make_tensor_value_info("query", TensorProto.FLOAT, [dim]),
            helper.make_tensor_value_info("products", TensorProto.FLOAT, ["n", dim]),
        ],
        [helper.make_tensor_value_info(_OUTPUT, TensorProto.FLOAT, ["n", len(names)])],
        initializer=[numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kairos")
    helper.set_model_props(model, {"heads": ",".join(names), "dim": str(dim)})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_heads_onnx(heads: Mapping[str, PairHeadWeights], directory: str | Path) -> Path:
    """Write directory/heads.onnx for these heads, replacing any atomically."""
    path = Path(directory) / HEADS_ONNX
    tmp = path.with_name(f".{HEADS_ONNX}.tmp")
    tmp.write_bytes(heads_model(heads))
    os.replace(tmp, path)
    return path


class OnnxPairHeads:
    """The heads of a version run by onnxruntime; the same answers as PairHeads (names, dim, probabilities)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # a few small matrix products: more threads only add overhead
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        self.names = tuple(props["heads"].split(","))
        self.dim = int(props["dim"])
        if [i.name for i in self.session.get_inputs()] != list(_INPUTS):
            raise ValueError(f"{path}: inputs {[i.name for i in self.session.get_inputs()]}, expected {_INPUTS}")

    def probabilities(self, query: np.ndarray, products: np.ndarray) -> dict[str, np.ndarray]:
        """Each head's probability (n,) for one query vector (dim,) against product vectors (n, dim)."""
        products = np.ascontiguousarray(products, dtype=np.float32).reshape(-1, self.dim)
        if not len(products):
            return {name: np.empty(0, dtype=np.float32) for name in self.names}
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(self.dim)
        (out,) = self.session.run([_OUTPUT], {"query": query, "products": products})
        return {name: out[:, i] for i, name in enumerate(self.names)}
