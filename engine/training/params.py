"""Which weights a fine-tune changes: all, only the top transformer layers, or LoRA adapters.

Heads (click, purchase, category, temperature) always train. LoRA (via peft) wraps the
attention and feed-forward projections in low-rank adapters; `merge` folds them back in
so the result is a plain transformer again, which the ONNX export and embedding expect.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from engine.modeling.config import ModelConfig
from engine.modeling.heads import MultiTaskModel

METHODS = ("full", "top_layers", "lora")
LORA_TARGETS = ["query", "key", "value", "dense"]  # BERT's attention and feed-forward Linear layers


def with_categories(
    model: MultiTaskModel, config: ModelConfig, categories: tuple[str, ...], seed: int
) -> tuple[MultiTaskModel, ModelConfig]:
    """The model with a category head over exactly these classes (a new head if the classes changed)."""
    if tuple(config.categories) == tuple(categories) and (model.category_head is not None) == bool(categories):
        return model, config
    heads = dataclasses.replace(config.heads, num_categories=len(categories))
    config = dataclasses.replace(config, heads=heads, categories=tuple(categories))
    torch.manual_seed(seed)  # the new head's initial weights are part of the seeded run
    model.config = heads
    model.category_head = nn.Linear(model.encoder.dim, len(categories)) if categories else None
    return model, config


def _layers(model: MultiTaskModel) -> nn.ModuleList:
    encoder = getattr(model.encoder.transformer, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError("top_layers needs a BERT-style transformer (encoder.layer)")
    return layers


def apply_method(model: MultiTaskModel, method: str, top_layers: int, lora: dict) -> MultiTaskModel:
    """Freeze or wrap the encoder for the method; returns the model (its encoder may be wrapped)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    for parameter in model.parameters():
        parameter.requires_grad = method == "full"
    if method == "top_layers":
        layers = _layers(model)
        for layer in list(layers)[len(layers) - max(0, min(top_layers, len(layers))) :]:
            for parameter in layer.parameters():
                parameter.requires_grad = True
    elif method == "lora":
        from peft import LoraConfig, get_peft_model  # imported only when asked for

        settings = LoraConfig(
            r=int(lora.get("rank", 8)),
            lora_alpha=int(lora.get("alpha", 16)),
            lora_dropout=float(lora.get("dropout", 0.05)),
            target_modules=LORA_TARGETS,
            bias="none",
        )
        model.encoder.transformer = get_peft_model(model.encoder.transformer, settings)
    for module in (model.click_head, model.purchase_head, model.category_head):
        if module is not None:
            for parameter in module.parameters():
                parameter.requires_grad = True
    model.log_scale.requires_grad = True
    return model


def merge(model: MultiTaskModel) -> MultiTaskModel:
    """Fold LoRA adapters into the base weights (no-op for the other methods); all weights trainable again."""
    transformer = model.encoder.transformer
    if hasattr(transformer, "merge_and_unload"):
        model.encoder.transformer = transformer.merge_and_unload()
    for parameter in model.parameters():
        parameter.requires_grad = True
    return model


def parameter_groups(model: MultiTaskModel, extra: list[nn.Parameter], encoder_lr: float, head_lr: float) -> list[dict]:
    """Optimizer groups: trainable encoder weights at encoder_lr, heads (and extra) at head_lr."""
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    encoder = [p for p in model.parameters() if p.requires_grad and id(p) in encoder_ids]
    heads = [p for p in model.parameters() if p.requires_grad and id(p) not in encoder_ids] + extra
    groups = [{"params": heads, "lr": head_lr}]
    if encoder:
        groups.insert(0, {"params": encoder, "lr": encoder_lr})
    return groups


def count_trainable(model: MultiTaskModel) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
