"""Losses of the multi-task model and how they are combined into one training objective.

Relevance: in-batch InfoNCE over query x product similarities with graded soft targets.
Click and purchase: binary cross-entropy with per-example weights, which carry inverse
propensity weights (position-bias correction) and mask missing labels with weight 0.
Category: cross-entropy, ignoring products without a known category.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.modeling.config import LossWeights
from engine.modeling.heads import MultiTaskOutput

TASKS = ("relevance", "click", "purchase", "category")
IGNORE_CATEGORY = -100


def in_batch_targets(
    grades: torch.Tensor,
    num_products: int,
    query_ids: torch.Tensor | None = None,
    product_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Graded targets (B, P) for in-batch contrastive training.

    Row i is query i; pair k = (query k, product k) has grade grades[k] in [0, 1]. A target
    is the grade of a pair whose query equals row i's and whose product equals column j's:
    with ids, a query repeated in the batch sees all its judged products as positives, and a
    product repeated in the batch is not pushed away from itself. Everything else is an
    in-batch negative (target 0), the usual assumption for random in-batch products.
    """
    batch = grades.shape[0]
    if num_products < batch:
        raise ValueError(f"{num_products} products for {batch} queries")
    device = grades.device
    if query_ids is None:
        same_query = torch.eye(batch, dtype=torch.bool, device=device)
    else:
        same_query = query_ids[:, None] == query_ids[None, :]
    if product_ids is None:
        same_product = torch.eye(batch, num_products, dtype=torch.bool, device=device)
    else:
        same_product = product_ids[:batch, None] == product_ids[None, :num_products]
    # targets[i, j] = max_k same_query[i, k] * grade[k] * same_product[k, j]
    graded = same_query[:, :, None] * grades[None, :, None] * same_product[None, :, :]
    return graded.amax(dim=1).to(grades.dtype)


def info_nce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Contrastive loss of logits (B, P) against graded targets (B, P).

    Each row's targets, normalised to sum to 1, are the soft label of a softmax over the
    row; the row counts with weight (row's best grade x its example weight), so a query
    whose only partner is a substitute pulls less than one with an exact match. Rows with
    no positive are skipped.
    """
    best = targets.amax(dim=1)
    has_positive = best > 0
    if not bool(has_positive.any()):
        return logits.sum() * 0.0  # keeps the graph; nothing to learn from this batch
    soft = targets / targets.sum(dim=1, keepdim=True).clamp(min=1e-12)
    per_row = -(soft * F.log_softmax(logits, dim=1)).sum(dim=1)
    example = weights if weights is not None else torch.ones_like(best)
    row_weight = torch.where(has_positive, example * best, torch.zeros_like(best))
    return (row_weight * per_row).sum() / (example * has_positive).sum().clamp(min=1e-12)


def weighted_bce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    reduction: str = "self_normalized",
) -> torch.Tensor:
    """Binary cross-entropy with per-example weights (0 masks an example).

    "self_normalized" divides by the weight sum (lower variance under large inverse
    propensities), "mean" by the number of examples with a weight (plain IPS).
    """
    weights = torch.ones_like(logits) if weights is None else weights.to(logits.dtype)
    per_example = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    present = weights > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    denominator = weights.sum() if reduction == "self_normalized" else present.sum().to(logits.dtype)
    return (weights * per_example).sum() / denominator


def category_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over category logits; targets equal to IGNORE_CATEGORY do not count."""
    if not bool((targets != IGNORE_CATEGORY).any()):
        return logits.sum() * 0.0  # F.cross_entropy would return nan here
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_CATEGORY)


@dataclass
class TaskTargets:
    """Labels for one batch; a task whose labels are None is left out of the loss."""

    grades: torch.Tensor | None = None  # (B,) relevance of pair i in [0, 1]
    query_ids: torch.Tensor | None = None  # (B,) to find repeated queries in the batch
    product_ids: torch.Tensor | None = None  # (P,) to find repeated products in the batch
    relevance_weights: torch.Tensor | None = None  # (B,)
    clicks: torch.Tensor | None = None  # (B,) 0/1
    click_weights: torch.Tensor | None = None  # (B,) inverse propensities; 0 = no label
    purchases: torch.Tensor | None = None  # (B,) 0/1 (purchase or add-to-cart)
    purchase_weights: torch.Tensor | None = None  # (B,)
    categories: torch.Tensor | None = None  # (P,) class index or IGNORE_CATEGORY


@dataclass
class LossBreakdown:
    """The objective to backpropagate and each task's plain loss, for logging."""

    total: torch.Tensor
    parts: dict[str, float]
    weights: dict[str, float]  # the effective weight of each task in this step


def _has_labels(weights: torch.Tensor | None) -> bool:
    return weights is None or bool((weights > 0).any())


class MultiTaskLoss(nn.Module):
    """Weighted sum of the task losses, with fixed weights or learned uncertainty weights.

    With uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018) each task t has a
    learned s_t = log sigma_t^2 and contributes 0.5 * exp(-s_t) * L_t + 0.5 * s_t; a task
    whose fixed weight is 0 stays off either way. Its parameters must join the optimiser.
    """

    def __init__(self, weights: LossWeights) -> None:
        super().__init__()
        self.config = weights
        self.log_vars = nn.Parameter(torch.zeros(len(TASKS))) if weights.uncertainty else None

    def _task_losses(self, output: MultiTaskOutput, targets: TaskTargets) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        reduction = self.config.bce_reduction
        if targets.grades is not None:
            soft = in_batch_targets(targets.grades, output.product.shape[0], targets.query_ids, targets.product_ids)
            if bool((soft > 0).any()):
                losses["relevance"] = info_nce(output.similarity_logits, soft, targets.relevance_weights)
        if targets.clicks is not None and _has_labels(targets.click_weights):
            losses["click"] = weighted_bce(output.click_logits, targets.clicks, targets.click_weights, reduction)
        if targets.purchases is not None and _has_labels(targets.purchase_weights):
            losses["purchase"] = weighted_bce(
                output.purchase_logits, targets.purchases, targets.purchase_weights, reduction
            )
        if (
            targets.categories is not None
            and output.category_logits is not None
            and bool((targets.categories != IGNORE_CATEGORY).any())
        ):
            losses["category"] = category_loss(output.category_logits, targets.categories)
        return losses

    def forward(self, output: MultiTaskOutput, targets: TaskTargets) -> LossBreakdown:
        """Combine the losses of the tasks that have labels in this batch."""
        losses = self._task_losses(output, targets)
        fixed = {task: getattr(self.config, task) for task in TASKS}
        total = output.query.sum() * 0.0
        effective: dict[str, float] = {}
        for task, loss in losses.items():
            if fixed[task] == 0:
                continue
            if self.log_vars is None:
                total = total + fixed[task] * loss
                effective[task] = fixed[task]
            else:
                log_var = self.log_vars[TASKS.index(task)]
                total = total + 0.5 * torch.exp(-log_var) * loss + 0.5 * log_var
                effective[task] = float(0.5 * torch.exp(-log_var).detach())
        return LossBreakdown(
            total=total, parts={task: float(loss.detach()) for task, loss in losses.items()}, weights=effective
        )
