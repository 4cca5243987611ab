"""The click and purchase heads at serving time: the trained PairHead MLPs.

The web process has no torch, so a version build exports each trained head's two linear
layers to heads.npz (engine.modeling.head_export), and the same weights as an ONNX graph,
heads.onnx (engine.serving.heads_onnx), which serving runs with onnxruntime when present.
The numpy pass here serves versions built before heads.onnx existed. It is the torch
one: pair features [q, p, q*p, |q-p|] (engine.modeling.heads.pair_features), Linear (its
four input blocks applied apart, see PairHeads), exact (erf) GELU, Linear, then a sigmoid
for a probability. Dropout is off at inference, as in torch's eval mode.

Inputs are the vectors serving already holds: the query from the ONNX encoder and the
products from the VectorIndex, both unit length like the torch encoder's output the heads
were trained on, from the same text builders. Two known gaps, shared with the relevance
tower: the int8 query encoder agrees with torch to a cosine of about 0.99, and training
reads the first 64 tokens of a product (FineTuneConfig.product_max_length) where the
build embeds 128, so a long product's vector differs a little from the one trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.serving.fusion import rank_by, reciprocal_rank_fusion
from engine.serving.heads_onnx import HEADS_ONNX, OnnxPairHeads
from engine.serving.ranker import LinearRanker
from engine.serving.vectors import VectorIndex

HEADS_FILE = "heads.npz"
HEAD_NAMES = ("click", "purchase")  # the ranker's FEATURES columns of the same names
FORMAT = "kairos-pair-heads/1"
FORMAT_KEY = "format"
# The torch module's own state-dict keys: net.0 is the first Linear, net.3 the output Linear.
LAYER_KEYS = ("0.weight", "0.bias", "3.weight", "3.bias")
# How many candidates (the best by reciprocal rank fusion) get head predictions per search:
# the ranker decides the top of the list; deeper candidates keep 0 in these columns.
SCORED_CANDIDATES = 50

# Abramowitz and Stegun 7.1.26: erf to within 1.5e-7, in numpy (no scipy in the web process).
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


class HeadsError(ValueError):
    """heads.npz is not a set of PairHead weights this code can run."""


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise: absolute error below 5e-7 in float32 (1.5e-7 in exact arithmetic)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * a)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray) -> np.ndarray:
    """torch.nn.GELU() (approximate='none'): x * Phi(x)."""
    return 0.5 * x * (1.0 + erf(x * np.float32(1.0 / np.sqrt(2.0))))


@dataclass(frozen=True)
class PairHeadWeights:
    """One head: Linear(4*dim, hidden), GELU, Linear(hidden, 1), in torch's (out, in) layout."""

    weight1: np.ndarray  # (hidden, 4 * dim)
    bias1: np.ndarray  # (hidden,)
    weight2: np.ndarray  # (1, hidden)
    bias2: np.ndarray  # (1,)

    def __post_init__(self) -> None:
        hidden, inputs = self.weight1.shape
        if inputs % 4 or self.bias1.shape != (hidden,) or self.weight2.shape != (1, hidden) or self.bias2.shape != (1,):
            raise HeadsError(
                f"inconsistent shapes {self.weight1.shape}, {self.bias1.shape}, {self.weight2.shape}, {self.bias2.shape}"
            )

    @property
    def dim(self) -> int:
        """Size of the embeddings the head reads."""
        return self.weight1.shape[1] // 4


class PairHeads:
    """The trained heads of a version, run together: their first layers share the matrix products."""

    def __init__(self, heads: Mapping[str, PairHeadWeights]) -> None:
        if not heads:
            raise HeadsError("no heads")
        dims = {h.dim for h in heads.values()}
        if len(dims) != 1:
            raise HeadsError(f"heads read different embedding sizes {sorted(dims)}")
        self.names = tuple(heads)
        self.dim = dim = dims.pop()
        # First layers side by side, (4*dim, sum of hidden sizes), cut into the blocks that read
        # q, p, q*p and |q-p|: the q block is the same for every product, and q*p @ W equals
        # p @ (q[:, None] * W), so a search costs two (n, dim) products instead of one (n, 4*dim).
        w1 = np.concatenate([h.weight1 for h in heads.values()]).T.astype(np.float32)
        self._w_q, self._w_p, self._w_qp, self._w_abs = (
            np.ascontiguousarray(w1[i * dim : (i + 1) * dim]) for i in range(4)
        )
        self._b1 = np.concatenate([h.bias1 for h in heads.values()]).astype(np.float32)
        self._w2 = [h.weight2[0].astype(np.float32) for h in heads.values()]
        self._b2 = [np.float32(h.bias2[0]) for h in heads.values()]
        self._bounds = np.cumsum([0] + [h.bias1.shape[0] for h in heads.values()])

    def logits(self, query: np.ndarray, products: np.ndarray) -> dict[str, np.ndarray]:
        """Logits (n,) per head for one query vector (dim,) against product vectors (n, dim)."""
        products = np.asarray(products, dtype=np.float32).reshape(-1, self.dim)
        query = np.asarray(query, dtype=np.float32).reshape(self.dim)
        if not len(products):
            return {name: np.empty(0, dtype=np.float32) for name in self.names}
        # Equal to [q, p, q*p, |q-p|] @ w1 + b1, in half the multiplications.
        first = products @ (self._w_p + query[:, None] * self._w_qp) + np.abs(query - products) @ self._w_abs
        hidden = gelu(first + (query @ self._w_q + self._b1))
        out = {}
        for i, name in enumerate(self.names):
            start, end = self._bounds[i], self._bounds[i + 1]
            out[name] = hidden[:, start:end] @ self._w2[i] + self._b2[i]
        return out

    def probabilities(self, query: np.ndarray, products: np.ndarray) -> dict[str, np.ndarray]:
        """Sigmoid of the logits: the heads' click and purchase probabilities per product."""
        return {name: 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))) for name, z in self.logits(query, products).items()}


def heads_in(path: str | Path) -> tuple[str, ...]:
    """The head names a heads.npz file holds (none when the file is absent)."""
    path = Path(path)
    if not path.is_file():
        return ()
    with np.load(path, allow_pickle=False) as data:
        return tuple(name for name in HEAD_NAMES if f"{name}.{LAYER_KEYS[0]}" in data.files)


def load_heads(directory: str | Path) -> PairHeads | OnnxPairHeads | None:
    """The version's trained heads, or None when it has none (old or zero-shot versions).

    Run by onnxruntime from heads.onnx when the build wrote one (it must hold the heads of
    heads.npz), else by numpy from heads.npz.
    """
    weights = load_head_weights(directory)
    if not weights:
        return None
    onnx_path = Path(directory) / HEADS_ONNX
    if not onnx_path.is_file():
        return PairHeads(weights)
    heads = OnnxPairHeads(onnx_path)
    dim = PairHeads(weights).dim
    if heads.names != tuple(weights) or heads.dim != dim:
        raise HeadsError(f"{onnx_path}: heads {heads.names} of dim {heads.dim}; heads.npz has {tuple(weights)}, {dim}")
    return heads


def load_head_weights(directory: str | Path) -> dict[str, PairHeadWeights]:
    """The weights in heads.npz by head name ({} when the file is absent)."""
    path = Path(directory) / HEADS_FILE
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        if FORMAT_KEY not in data.files or str(data[FORMAT_KEY]) != FORMAT:
            raise HeadsError(f"{path}: not a {FORMAT} file")
        heads = {}
        for name in HEAD_NAMES:
            keys = [f"{name}.{key}" for key in LAYER_KEYS]
            if keys[0] not in data.files:
                continue
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise HeadsError(f"{path}: {name} lacks {', '.join(missing)}")
            heads[name] = PairHeadWeights(*(np.asarray(data[k], dtype=np.float32) for k in keys))
    return heads


def head_scores(
    heads: PairHeads | OnnxPairHeads, vectors: VectorIndex, query: np.ndarray, ids: Sequence[int]
) -> dict[str, dict[int, float]]:
    """Each head's probability for these products (ids without a stored vector are left out)."""
    present, matrix = vectors.lookup(ids)
    return {
        name: dict(zip(present, values.tolist(), strict=True))
        for name, values in heads.probabilities(query, matrix).items()
    }


def arrays_for(heads: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of heads.npz for {head name: {LAYER_KEYS key: array}} (what the exporter writes)."""
    unknown = set(heads) - set(HEAD_NAMES)
    if unknown:
        raise HeadsError(f"unknown heads {sorted(unknown)}; known: {', '.join(HEAD_NAMES)}")
    arrays: dict[str, np.ndarray] = {FORMAT_KEY: np.array(FORMAT)}
    for name, layers in heads.items():
        for key in LAYER_KEYS:
            arrays[f"{name}.{key}"] = np.asarray(layers[key], dtype=np.float32)
    return arrays


def trained_names(names: Iterable[str]) -> tuple[str, ...]:
    """Known head names in FEATURES order, without repeats."""
    wanted = set(names)
    return tuple(name for name in HEAD_NAMES if name in wanted)


def candidate_head_scores(
    heads: PairHeads | OnnxPairHeads | None,
    ranker: LinearRanker | None,
    vectors: VectorIndex,
    query: np.ndarray,
    dense_hits: Sequence[tuple[int, float]],
    lexical_hits: Sequence[tuple[int, float]],
    top: int = SCORED_CANDIDATES,
) -> dict[str, dict[int, float]]:
    """Head probabilities for the top candidates by reciprocal rank fusion ({} when there is nothing to do).

    Nothing is computed without trained heads, or when the version's ranker gives both head
    columns no weight (a ranker fitted before the heads existed): then they cannot move a result.
    """
    if heads is None or top < 1:
        return {}
    if ranker is not None and not any(ranker.weights.get(name, 0.0) for name in heads.names):
        return {}
    fused = reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in lexical_hits]])
    return head_scores(heads, vectors, query, [pid for pid, _ in rank_by(fused)[:top]])
