"""Multi-task fine-tuning of a model version on labelled feedback pairs, in numbered steps.

1. seed every random source; 2. plan all batches from the seed; 3. choose the trainable
weights (full, top layers, or LoRA) and the optimizer; 4. resume from the last checkpoint
in the run's directory if there is one; 5. train: each step encodes its queries and
products, combines the relevance, click, purchase and category losses (weighted by the
pairs' evidence, i.e. inverse propensity and time decay) and updates; between steps it
checkpoints every N steps and stops cleanly when asked to; 6. fold adapters back in.
A run resumed from a checkpoint ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from engine.modeling.config import LossWeights
from engine.modeling.encoder import tokenize
from engine.modeling.heads import MultiTaskModel
from engine.modeling.losses import IGNORE_CATEGORY, MultiTaskLoss, TaskTargets
from engine.training import checkpoints
from engine.training.batching import BatchPlan, plan_batches
from engine.training.dataset import TrainingSet
from engine.training.params import apply_method, count_trainable, merge, parameter_groups


@dataclass(frozen=True)
class FineTuneConfig:
    """Hyperparameters of one fine-tuning run."""

    seed: int = 13
    method: str = "top_layers"  # full | top_layers | lora
    top_layers: int = 2
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    learning_rate: float = 3e-5  # encoder weights
    head_learning_rate: float = 1e-3  # task heads, temperature, uncertainty weights
    weight_decay: float = 0.01
    epochs: int = 1
    max_steps: int = 0  # 0: every planned batch
    batch_size: int = 32  # (query, product) pairs per step
    pairs_per_query: int = 8
    extra_negatives: int = 16  # random catalog products per step, as easy in-batch negatives
    warmup_fraction: float = 0.1
    max_grad_norm: float = 1.0
    checkpoint_every: int = 50
    max_seconds: float = 0.0  # > 0: stop training (keeping what was learned) after this long
    query_max_length: int = 32
    # Training reads the first 64 tokens of a product (title, brand, category, a bullet): half
    # the cost of 128 per step, and as good on validation in the learning-loop runs.
    product_max_length: int = 64
    loss: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def from_dict(cls, data: dict) -> FineTuneConfig:
        """Build from plain data (job params); unknown keys are an error."""
        data = dict(data)
        loss = LossWeights(**data.pop("loss", {}))
        return cls(**data, loss=loss)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FineTuneResult:
    model: MultiTaskModel
    steps: int  # optimizer steps done in total (including before a resume)
    planned_steps: int
    losses: list[dict] = field(default_factory=list)  # per step: total and each task
    stopped: str = ""  # "", "cancelled" or "time limit"
    resumed_from: int = 0
    seconds: float = 0.0
    pairs_trained: int = 0  # in this process (after a resume: since the resume)
    trainable_parameters: int = 0

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_trained / self.seconds if self.seconds > 0 else 0.0


def seed_everything(seed: int) -> None:
    """Step 1: Python, numpy and torch generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _targets(plan: BatchPlan, data: TrainingSet, products: list[int], device: torch.device) -> TaskTargets:
    rows = [data.examples[i] for i in plan.rows]
    query_index = {q: i for i, q in enumerate(dict.fromkeys(e.query for e in rows))}
    weight = torch.tensor([e.weight for e in rows], dtype=torch.float32, device=device)
    grades = torch.tensor([e.grade for e in rows], dtype=torch.float32, device=device)

    def floats(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device)

    return TaskTargets(
        grades=grades,
        query_ids=torch.tensor([query_index[e.query] for e in rows], device=device),
        product_ids=torch.tensor(products, device=device),
        # Only positive rows anchor the softmax; negatives take part as in-batch products.
        relevance_weights=torch.where(grades > 0, weight, torch.zeros_like(weight)),
        clicks=floats([e.click for e in rows]),
        click_weights=weight,
        purchases=floats([e.purchase for e in rows]),
        purchase_weights=weight,
        categories=torch.tensor(
            [data.product_category.get(p, IGNORE_CATEGORY) for p in products], dtype=torch.long, device=device
        ),
    )


def _schedule(total: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(total * warmup_fraction))
    return lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))


def fine_tune(
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    data: TrainingSet,
    config: FineTuneConfig,
    checkpoint_dir: str | Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: torch.device | str = "cpu",
) -> FineTuneResult:
    """Train `model` in place on the pairs of `data` (its category head must match data.categories)."""
    say = log or (lambda _: None)
    device = torch.device(device)
    seed_everything(config.seed)  # 1
    plans = plan_batches(  # 2
        data.examples,
        list(data.product_text),
        config.batch_size,
        config.pairs_per_query,
        config.extra_negatives,
        config.epochs,
        config.seed,
    )
    total = min(len(plans), config.max_steps) if config.max_steps > 0 else len(plans)
    lora = {"rank": config.lora_rank, "alpha": config.lora_alpha, "dropout": config.lora_dropout}
    model = apply_method(model, config.method, config.top_layers, lora).to(device)  # 3
    loss_fn = MultiTaskLoss(config.loss).to(device)
    extra = [loss_fn.log_vars] if loss_fn.log_vars is not None else []
    groups = parameter_groups(model, extra, config.learning_rate, config.head_learning_rate)
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, config.warmup_fraction))
    trainable, size = count_trainable(model)
    say(f"fine-tune: {config.method}, {trainable:,} of {size:,} weights trainable, {total} steps planned")
    result = FineTuneResult(model=model, steps=0, planned_steps=total, trainable_parameters=trainable)
    keys = [(e.query, e.product_id, round(e.grade, 6), round(e.weight, 6)) for e in data.examples]
    trajectory = {k: v for k, v in config.to_dict().items() if k not in ("max_seconds", "checkpoint_every")}
    fingerprint = checkpoints.fingerprint(trajectory, keys, total)
    state = checkpoints.load_latest(checkpoint_dir, fingerprint) if checkpoint_dir else None  # 4
    if state is not None:
        checkpoints.restore(state, model, loss_fn, optimizer, scheduler)
        result.steps = result.resumed_from = state["step"]
        result.losses = state["losses"]
        say(f"resumed from the checkpoint at step {result.steps}")
    model.train()
    started = time.perf_counter()
    step = result.steps
    while step < total:  # 5
        if should_stop is not None and should_stop():
            result.stopped = "cancelled"
            break
        if config.max_seconds > 0 and time.perf_counter() - started > config.max_seconds:
            result.stopped = "time limit"
            break
        plan = plans[step]
        rows = [data.examples[i] for i in plan.rows]
        products = [e.product_id for e in rows] + list(plan.extra_products)
        queries = tokenize(tokenizer, [e.query for e in rows], config.query_max_length, device)
        texts = tokenize(tokenizer, [data.product_text[p] for p in products], config.product_max_length, device)
        breakdown = loss_fn(model(queries, texts), _targets(plan, data, products, device))
        optimizer.zero_grad(set_to_none=True)
        breakdown.total.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        result.pairs_trained += len(rows)
        result.losses.append({"step": step, "total": round(float(breakdown.total.detach()), 5), **breakdown.parts})
        if progress is not None:
            progress(step, total)
        if checkpoint_dir and (step % max(1, config.checkpoint_every) == 0 or step == total):
            checkpoints.save(checkpoint_dir, fingerprint, step, model, loss_fn, optimizer, scheduler, result.losses)
        if step % 10 == 0 or step == total:
            say(f"step {step}/{total}: loss {result.losses[-1]['total']:.4f}")
    result.seconds = time.perf_counter() - started
    result.steps = step
    if result.stopped:
        say(f"stopped ({result.stopped}) after step {step} of {total}")
    model.eval()
    result.model = merge(model)  # 6
    return result
