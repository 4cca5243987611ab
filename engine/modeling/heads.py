"""The multi-task model: one shared encoder for queries and products, and small task heads.

Tasks: relevance (two-tower cosine with a learned temperature, trained in-batch),
click and purchase/add-to-cart prediction (MLPs over the query-product pair), and
optional category tagging of products. Only the encoder is served: the query tower is
exported to ONNX and products are embedded in batches; the heads shape it in training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from engine.modeling.config import HeadConfig
from engine.modeling.encoder import SentenceEncoder


@dataclass
class MultiTaskOutput:
    """What one forward pass gives the losses; pair logits align query i with product i."""

    query: torch.Tensor  # (B, dim), unit length
    product: torch.Tensor  # (P, dim), unit length, P >= B
    similarity_logits: torch.Tensor  # (B, P): cosine / temperature
    click_logits: torch.Tensor  # (B,)
    purchase_logits: torch.Tensor  # (B,)
    category_logits: torch.Tensor | None  # (P, num_categories), None without a category head


def pair_features(query: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    """The classic sentence-pair features [q, p, q*p, |q-p|] (InferSent, SBERT)."""
    return torch.cat([query, product, query * product, (query - product).abs()], dim=-1)


class PairHead(nn.Module):
    """An MLP from pair features to one logit per pair."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4 * dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, query: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for aligned rows of query and product embeddings."""
        return self.net(pair_features(query, product)).squeeze(-1)


class MultiTaskModel(nn.Module):
    """Shared encoder plus relevance, click, purchase and (optional) category heads."""

    def __init__(self, encoder: SentenceEncoder, config: HeadConfig) -> None:
        super().__init__()
        if not 0 < config.min_temperature <= config.init_temperature:
            raise ValueError("need 0 < min_temperature <= init_temperature")
        self.config = config
        self.encoder = encoder
        dim = encoder.dim
        # Learn log(1/temperature) as CLIP does: positive by construction, smooth to optimise.
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        self.click_head = PairHead(dim, config.mlp_hidden, config.dropout)
        self.purchase_head = PairHead(dim, config.mlp_hidden, config.dropout)
        self.category_head = nn.Linear(dim, config.num_categories) if config.num_categories > 0 else None

    @property
    def temperature(self) -> float:
        """The current softmax temperature of the relevance logits."""
        return 1.0 / float(self.scale().detach())

    def scale(self) -> torch.Tensor:
        """1 / temperature, capped so the temperature never drops below its configured floor."""
        return self.log_scale.exp().clamp(max=1.0 / self.config.min_temperature)

    def encode(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Embed a tokenized batch with the shared encoder."""
        return self.encoder.encode_batch(batch)

    def forward(self, queries: Mapping[str, torch.Tensor], products: Mapping[str, torch.Tensor]) -> MultiTaskOutput:
        """Run all heads; products beyond the first B rows serve only as extra in-batch negatives."""
        query = self.encode(queries)
        product = self.encode(products)
        if product.shape[0] < query.shape[0]:
            raise ValueError(f"{product.shape[0]} products for {query.shape[0]} queries: need one partner each")
        partner = product[: query.shape[0]]
        return MultiTaskOutput(
            query=query,
            product=product,
            similarity_logits=self.scale() * query @ product.T,
            click_logits=self.click_head(query, partner),
            purchase_logits=self.purchase_head(query, partner),
            category_logits=self.category_head(product) if self.category_head is not None else None,
        )
