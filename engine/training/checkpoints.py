"""Fine-tuning checkpoints: the trainable weights, optimizer, schedule and random state at a step.

Written to a temporary file and renamed, so a worker killed mid-write leaves the previous
checkpoint intact; only the newest one is kept. A checkpoint made for other settings or
data (its fingerprint differs) is ignored rather than resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

PREFIX = "checkpoint-"


def fingerprint(settings: dict, examples: list, steps: int) -> str:
    """A short hash of what a run must share with the run that wrote a checkpoint (settings, data, plan)."""
    raw = json.dumps({"settings": settings, "examples": examples, "steps": steps}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def save(
    directory: str | Path,
    fingerprint_: str,
    step: int,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    losses: list[dict],
) -> Path:
    """Write checkpoint-<step>.pt atomically and delete older ones."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "fingerprint": fingerprint_,
        "step": step,
        "model": _trainable(model),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "losses": list(losses),
    }
    target = directory / f"{PREFIX}{step:07d}.pt"
    tmp = directory / f".{target.name}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, target)
    for old in directory.glob(f"{PREFIX}*.pt"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def load_latest(directory: str | Path, fingerprint_: str) -> dict | None:
    """The newest readable checkpoint with this fingerprint, or None."""
    for path in sorted(Path(directory).glob(f"{PREFIX}*.pt"), reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # a truncated file from a crash: try the one before it
            continue
        if state.get("fingerprint") == fingerprint_:
            return state
    return None


def restore(
    state: dict,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Put a checkpoint's weights and training state back."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["model"].items():
            parameters[name].copy_(value.to(parameters[name].device))
    loss_fn.load_state_dict(state["loss"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
