"""Batched embedding of many texts (products, mostly) with the torch encoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from engine.modeling.encoder import SentenceEncoder
from engine.modeling.heads import MultiTaskModel

Progress = Callable[[int, int], None]


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def embed_texts(
    model: SentenceEncoder | MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Unit-length embeddings (n, dim) float32, row i for texts[i].

    Texts are tokenized once, sorted by token count and batched, so each batch pads only to
    its own longest member (as sentence-transformers does); rows come back in input order.
    The model is moved to `device` (default: CUDA when available) and left in the mode it
    was in. progress(done, total) is called after every batch.
    """
    encoder = model.encoder if isinstance(model, MultiTaskModel) else model
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    device = torch.device(device) if device is not None else default_device()
    total = len(texts)
    out = np.empty((total, encoder.dim), dtype=np.float32)
    if total == 0:
        return out
    tokens = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids: list[list[int]] = tokens["input_ids"]
    order = sorted(range(total), key=lambda i: len(ids[i]), reverse=True)  # longest first: OOM shows up at once
    was_training = encoder.training
    encoder.to(device).eval()
    try:
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                rows = order[start : start + batch_size]
                features = {name: [tokens[name][i] for i in rows] for name in tokens.keys()}
                batch = tokenizer.pad(features, padding=True, return_tensors="pt")
                vectors = encoder.encode_batch({name: t.to(device) for name, t in batch.items()})
                out[rows] = vectors.float().cpu().numpy()
                if progress is not None:
                    progress(min(start + batch_size, total), total)
    finally:
        encoder.train(was_training)
    return out
