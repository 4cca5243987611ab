"""Hyperparameters of the multi-task model, as plain dataclasses that round-trip through JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class EncoderConfig:
    """How texts become token ids for the shared encoder."""

    query_max_length: int = 32  # shop queries are short; 32 word pieces cover nearly all of them
    product_max_length: int = 128
    max_bullets: int = 3  # product text uses only the first bullet points
    max_product_chars: int = 600  # bounds tokenizer work before the token limit cuts in


@dataclass(frozen=True)
class HeadConfig:
    """Sizes of the task heads on top of the encoder."""

    mlp_hidden: int = 256
    dropout: float = 0.1
    num_categories: int = 0  # 0: no category tagging head
    init_temperature: float = 0.05  # cosine / temperature gives the contrastive logits
    min_temperature: float = 0.01  # a floor keeps the learned scale from exploding


@dataclass(frozen=True)
class LossWeights:
    """Fixed task weights, or Kendall et al. uncertainty weighting when `uncertainty` is set."""

    relevance: float = 1.0
    click: float = 0.5
    purchase: float = 0.5
    category: float = 0.2
    uncertainty: bool = False
    # "self_normalized" divides by the weight sum (SNIPS), "mean" by the example count (plain IPS).
    bce_reduction: str = "self_normalized"

    def __post_init__(self) -> None:
        if self.bce_reduction not in ("self_normalized", "mean"):
            raise ValueError(f"bce_reduction must be 'self_normalized' or 'mean', got {self.bce_reduction!r}")
        if min(self.relevance, self.click, self.purchase, self.category) < 0:
            raise ValueError("loss weights must be non-negative")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model version besides its weights and tokenizer."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    heads: HeadConfig = field(default_factory=HeadConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    categories: tuple[str, ...] = ()  # names of the category head's classes, in logit order
    base_model: str = "all-MiniLM-L6-v2"

    def __post_init__(self) -> None:
        if self.categories and len(self.categories) != self.heads.num_categories:
            raise ValueError(f"{len(self.categories)} category names for {self.heads.num_categories} classes")

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data."""
        data = asdict(self)
        data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config written by to_dict; unknown keys are an error, missing ones take defaults."""
        return cls(
            encoder=EncoderConfig(**data.get("encoder", {})),
            heads=HeadConfig(**data.get("heads", {})),
            loss=LossWeights(**data.get("loss", {})),
            categories=tuple(data.get("categories", ())),
            base_model=data.get("base_model", cls.base_model),
        )
