"""Export of the query tower (encoder + mean pooling + normalisation) to ONNX for serving.

The dynamo exporter is used on purpose: the TorchScript exporter was seen producing
embeddings that drift with the query length for this model, while the dynamo export
matched torch exactly. Every export is checked against torch before it is kept.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn
from transformers import PreTrainedTokenizerBase

from engine.modeling.encoder import SentenceEncoder

FP32_FILE = "query_encoder.onnx"
INT8_FILE = "query_encoder.int8.onnx"
META_FILE = "query_encoder.json"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT_NAME = "sentence_embedding"  # "embedding" clashes with a node name in the exported graph
VERIFY_MIN_COSINE = 0.999
VERIFY_MAX_LENGTH = 128  # the same graph embeds product texts too, at up to 128 tokens


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch embeddings."""


@dataclass(frozen=True)
class ExportedEncoder:
    """Where an export put its files."""

    fp32: Path
    int8: Path | None
    tokenizer: Path
    meta: Path


class QueryTower(nn.Module):
    """The encoder as a graph with plain tensor inputs, for export."""

    def __init__(self, encoder: SentenceEncoder, with_token_type_ids: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.with_token_type_ids = with_token_type_ids

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Unit-length embeddings (batch, dim)."""
        return self.encoder(input_ids, attention_mask, token_type_ids if self.with_token_type_ids else None)


def _input_names(with_token_type_ids: bool) -> list[str]:
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_type_ids else [])


def _example(tokenizer: PreTrainedTokenizerBase, names: list[str]) -> tuple[torch.Tensor, ...]:
    # Batch 2 and a padded row: a size-1 axis or an all-ones mask would be specialised by tracing.
    batch = tokenizer(["wireless noise cancelling headphones", "socks"], padding=True, return_tensors="pt")
    return tuple(batch[name] for name in names)


def _export_fp32(tower: QueryTower, example: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: sequence} for name in names}
    with warnings.catch_warnings():
        # The exporter warns that axes sharing a Dim share a name: that is the intent.
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # inside torch.export
        torch.onnx.export(
            tower,
            example,
            str(path),
            dynamo=True,
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes,
            external_data=False,
            optimize=True,
            verbose=False,
        )


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights, per output channel.

    Per-channel weights keep MiniLM's cosine to fp32 near 0.99 where per-tensor gave about
    0.91 on one-word queries; the embedding tables stay fp32 for the same reason. 7-bit
    weights (reduce_range) avoid saturation on CPUs without VNNI at no measurable cost.
    """
    quantize_dynamic(
        str(fp32_path),
        str(int8_path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul"],
    )


def verify_onnx(
    tower: QueryTower, tokenizer: PreTrainedTokenizerBase, path: Path, names: list[str], max_length: int
) -> float:
    """Lowest cosine between ONNX and torch over queries of several lengths in one padded batch."""
    words = "kids waterproof winter boots with warm lining and non slip soles for snow".split()
    texts = ["", "tv"] + [" ".join((words * 12)[:n]) for n in (3, 9, 15, 27, 39, max_length, 140)]
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=max(max_length, VERIFY_MAX_LENGTH), return_tensors="pt"
    )
    with torch.inference_mode():
        expected = tower(*(batch[name] for name in names)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {name: batch[name].numpy() for name in names})[0]
    return float(np.min(np.sum(expected * got, axis=1) / np.linalg.norm(got, axis=1)))


def export_query_encoder(
    encoder: SentenceEncoder,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    max_length: int = 32,
    with_token_type_ids: bool = False,
    int8: bool = True,
) -> ExportedEncoder:
    """Write query_encoder.onnx (fp32), query_encoder.int8.onnx, tokenizer.json and query_encoder.json.

    Files go straight into out_dir; for an atomic publish call this as the `extra` step of
    io.save_model_version. Raises ExportError when ONNX and torch disagree.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A CPU copy in eval mode: the caller's model keeps its device and training mode.
    tower = QueryTower(copy.deepcopy(encoder).to("cpu").eval(), with_token_type_ids).eval()
    names = _input_names(with_token_type_ids)
    _export_fp32(tower, _example(tokenizer, names), names, out / FP32_FILE)
    cosine = verify_onnx(tower, tokenizer, out / FP32_FILE, names, max_length)
    if cosine < VERIFY_MIN_COSINE:
        raise ExportError(f"ONNX export disagrees with torch: cosine {cosine:.5f} < {VERIFY_MIN_COSINE}")
    if int8:
        quantize_int8(out / FP32_FILE, out / INT8_FILE)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer.save_pretrained(scratch)
        shutil.copyfile(Path(scratch) / TOKENIZER_FILE, out / TOKENIZER_FILE)
    meta = {
        "inputs": names,
        "output": OUTPUT_NAME,
        "dim": encoder.dim,
        "max_length": max_length,
        "pad_token": tokenizer.pad_token,
        "pad_id": tokenizer.pad_token_id,
        "files": {"fp32": FP32_FILE, **({"int8": INT8_FILE} if int8 else {})},
        "verified_min_cosine": round(cosine, 6),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return ExportedEncoder(
        fp32=out / FP32_FILE,
        int8=out / INT8_FILE if int8 else None,
        tokenizer=out / TOKENIZER_FILE,
        meta=out / META_FILE,
    )
