"""The ONNX query encoder the web process holds: onnxruntime + tokenizers, no torch.

Reads what engine.modeling.export wrote into a model version directory
(query_encoder[.int8].onnx, tokenizer.json, query_encoder.json). Single queries go
through a bounded LRU cache, since head queries repeat a lot.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

VARIANT_FILES = {"fp32": "query_encoder.onnx", "int8": "query_encoder.int8.onnx"}
META_FILE = "query_encoder.json"
DEFAULT_MAX_LENGTH = 32


@dataclass(frozen=True)
class CacheStats:
    """Counters of the single-query cache."""

    hits: int
    misses: int
    size: int
    max_size: int


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class OnnxQueryEncoder:
    """Embeds query texts with an exported query tower; thread-safe."""

    def __init__(
        self,
        model_dir: str | Path,
        variant: str = "int8",
        threads: int = 1,
        cache_size: int = 4096,
        max_length: int | None = None,
        batch_size: int = 64,
    ) -> None:
        if variant not in VARIANT_FILES:
            raise ValueError(f"variant must be one of {', '.join(VARIANT_FILES)}, got {variant!r}")
        model_dir = Path(model_dir)
        meta_file = model_dir / META_FILE
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
        self.variant = variant
        self.max_length = int(max_length or meta.get("max_length") or DEFAULT_MAX_LENGTH)
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The shipped tokenizer.json may pad every input to a fixed length; pad per batch instead.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length)
        pad_token = meta.get("pad_token", "[PAD]")
        pad_id = meta.get("pad_id", self.tokenizer.token_to_id(pad_token) or 0)
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        options = ort.SessionOptions()
        # One intra-op thread per query by default: gunicorn runs several workers per core budget.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_dir / VARIANT_FILES[variant]), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name
        self.dim = int(meta.get("dim") or self.session.get_outputs()[0].shape[-1])
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._lowercases = self.tokenizer.normalizer is not None and self.tokenizer.normalizer.normalize_str("A") == "a"

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        feeds = {name: arrays[name] for name in self.input_names}
        return self.session.run([self.output_name], feeds)[0]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings (n, dim) float32 for a list of texts, in input order.

        With the int8 variant a row depends slightly on its batch-mates (dynamic quantisation
        scales activations per batch); encode_query always encodes a query alone.
        """
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        # Sorting by length keeps padding small when a long list is cut into batches.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run([texts[i] for i in rows])
        # int8 weights leave the norm slightly off 1; cosine scores assume exactly unit vectors.
        return l2_normalize(out)

    def cache_key(self, text: str) -> str:
        """The text as the tokenizer sees it: whitespace collapsed, lowercased if the model is uncased."""
        key = " ".join(text.split())
        return key.lower() if self._lowercases else key

    def encode_query(self, text: str) -> np.ndarray:
        """One unit-length query vector (dim,), read-only, cached by normalised text."""
        key = self.cache_key(text)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self._hits += 1
                return cached
            self._misses += 1
        # Encode outside the lock: a slow miss must not hold up cache hits in other threads.
        vector = self.encode([key])[0]
        vector.setflags(write=False)  # shared between callers through the cache
        if self._cache_size > 0:
            with self._lock:
                self._cache[key] = vector
                self._cache.move_to_end(key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return vector

    def cache_stats(self) -> CacheStats:
        """Hit and miss counts and current size of the single-query cache."""
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses, size=len(self._cache), max_size=self._cache_size)

    def clear_cache(self) -> None:
        """Drop cached vectors and reset the counters."""
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0
