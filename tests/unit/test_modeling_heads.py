"""Multi-task model heads and losses, on a tiny randomly initialised encoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.modeling.config import HeadConfig, LossWeights
from engine.modeling.encoder import tiny_encoder, tokenize
from engine.modeling.heads import MultiTaskModel
from engine.modeling.losses import (
    IGNORE_CATEGORY,
    TASKS,
    MultiTaskLoss,
    TaskTargets,
    category_loss,
    in_batch_targets,
    info_nce,
    weighted_bce,
)

QUERIES = ["running shoes", "usb c cable", "green tea", "kids winter boots"]
PRODUCTS = [
    "Nike running shoes for men",
    "USB-C to USB-C cable 2m",
    "Organic green tea, 100 bags",
    "Waterproof winter boots for kids",
    "Stainless steel water bottle",
    "Wireless mouse",
]


def make_model(num_categories: int = 3, seed: int = 0) -> tuple[MultiTaskModel, object]:
    encoder, tokenizer = tiny_encoder(seed=seed)
    model = MultiTaskModel(encoder, HeadConfig(mlp_hidden=16, dropout=0.0, num_categories=num_categories))
    return model, tokenizer


def batches(tokenizer) -> tuple[dict, dict]:
    return tokenize(tokenizer, QUERIES, 16), tokenize(tokenizer, PRODUCTS, 32)


def full_targets() -> TaskTargets:
    return TaskTargets(
        grades=torch.tensor([1.0, 1.0, 0.1, 1.0]),
        clicks=torch.tensor([1.0, 0.0, 1.0, 0.0]),
        click_weights=torch.tensor([1.0, 2.0, 1.5, 1.0]),
        purchases=torch.tensor([1.0, 0.0, 0.0, 0.0]),
        categories=torch.tensor([0, 1, 2, 0, IGNORE_CATEGORY, 1]),
    )


def test_output_shapes_and_unit_embeddings():
    model, tokenizer = make_model()
    out = model(*batches(tokenizer))
    assert out.query.shape == (4, 32) and out.product.shape == (6, 32)
    assert out.similarity_logits.shape == (4, 6)
    assert out.click_logits.shape == (4,) and out.purchase_logits.shape == (4,)
    assert out.category_logits is not None and out.category_logits.shape == (6, 3)
    assert torch.allclose(out.query.norm(dim=1), torch.ones(4), atol=1e-5)
    # Logits are cosine divided by the temperature.
    cosine = out.query @ out.product.T
    assert torch.allclose(out.similarity_logits * model.temperature, cosine, atol=1e-5)


def test_category_head_is_optional():
    model, tokenizer = make_model(num_categories=0)
    assert model.category_head is None
    out = model(*batches(tokenizer))
    assert out.category_logits is None
    parts = MultiTaskLoss(LossWeights())(out, full_targets()).parts
    assert "category" not in parts and {"relevance", "click", "purchase"} <= set(parts)


def test_needs_a_product_per_query():
    model, tokenizer = make_model()
    queries, _ = batches(tokenizer)
    with pytest.raises(ValueError, match="partner"):
        model(queries, tokenize(tokenizer, PRODUCTS[:2], 32))


def test_in_batch_targets_diagonal_and_repeats():
    grades = torch.tensor([1.0, 0.1, 1.0])
    plain = in_batch_targets(grades, 4)
    assert torch.equal(plain, torch.tensor([[1.0, 0, 0, 0], [0, 0.1, 0, 0], [0, 0, 1.0, 0]]))
    # Query 0 appears twice: both its products are positives in both rows.
    repeated = in_batch_targets(grades, 4, query_ids=torch.tensor([7, 7, 8]))
    assert torch.equal(repeated[0], torch.tensor([1.0, 0.1, 0, 0]))
    assert torch.equal(repeated[1], repeated[0])
    # Product of pair 0 also sits in column 3 (an extra negative): it is not pushed away.
    same_product = in_batch_targets(grades, 4, product_ids=torch.tensor([5, 6, 9, 5]))
    assert same_product[0, 3] == 1.0 and same_product[1, 3] == 0.0


def test_info_nce_is_cross_entropy_for_one_hot_targets():
    logits = torch.randn(4, 6)
    targets = torch.eye(4, 6)
    assert torch.allclose(info_nce(logits, targets), F.cross_entropy(logits, torch.arange(4)), atol=1e-6)


def test_info_nce_grades_weight_rows_and_skip_negatives_only_rows():
    logits = torch.randn(3, 3)
    one_hot = info_nce(logits[:1], torch.eye(1, 3))
    # Row 1 has no positive (irrelevant pair): it drops out instead of counting as a zero loss.
    assert torch.allclose(info_nce(logits[:2], torch.tensor([[1.0, 0, 0], [0, 0, 0]])), one_hot)
    # A substitute (grade 0.1) pulls with a tenth of the weight.
    assert torch.allclose(info_nce(logits[:1], 0.1 * torch.eye(1, 3)), 0.1 * one_hot)
    nothing = info_nce(logits, torch.zeros(3, 3))
    assert nothing.item() == 0.0 and nothing.requires_grad is logits.requires_grad


def test_weighted_bce_masks_and_reductions():
    logits = torch.tensor([2.0, -1.0, 0.5])
    labels = torch.tensor([1.0, 0.0, 1.0])
    plain = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    masked = weighted_bce(logits, labels, torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(masked, plain[[0, 2]].mean())
    weights = torch.tensor([3.0, 1.0, 0.0])
    assert torch.allclose(weighted_bce(logits, labels, weights), (3 * plain[0] + plain[1]) / 4)
    assert torch.allclose(weighted_bce(logits, labels, weights, reduction="mean"), (3 * plain[0] + plain[1]) / 2)
    assert weighted_bce(logits, labels, torch.zeros(3)).item() == 0.0


def test_category_loss_with_no_known_category_is_zero_not_nan():
    logits = torch.randn(2, 3, requires_grad=True)
    loss = category_loss(logits, torch.tensor([IGNORE_CATEGORY, IGNORE_CATEGORY]))
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph


def train(model: MultiTaskModel, loss_fn: MultiTaskLoss, tokenizer, steps: int) -> list[dict[str, float]]:
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(loss_fn.parameters()), lr=3e-3)
    queries, products = batches(tokenizer)
    history = []
    for _ in range(steps):
        result = loss_fn(model(queries, products), full_targets())
        optimizer.zero_grad()
        result.total.backward()
        optimizer.step()
        history.append({**result.parts, "total": float(result.total.detach())})
    return history


def test_every_loss_decreases_on_a_toy_batch():
    model, tokenizer = make_model()
    history = train(model, MultiTaskLoss(LossWeights()), tokenizer, steps=12)
    for task in (*TASKS, "total"):
        assert history[-1][task] < history[0][task], task


def test_uncertainty_weights_exist_and_train():
    model, tokenizer = make_model()
    loss_fn = MultiTaskLoss(LossWeights(uncertainty=True))
    assert loss_fn.log_vars is not None and loss_fn.log_vars.shape == (len(TASKS),)
    assert any(p is loss_fn.log_vars for p in loss_fn.parameters())
    # At log variance 0 each task counts with weight 1/2.
    first = loss_fn(model(*batches(tokenizer)), full_targets())
    assert first.weights == {task: 0.5 for task in TASKS}
    assert torch.allclose(first.total, torch.tensor(0.5 * sum(first.parts.values())), atol=1e-5)
    history = train(model, loss_fn, tokenizer, steps=12)
    assert not torch.allclose(loss_fn.log_vars.detach(), torch.zeros(len(TASKS)))
    assert history[-1]["relevance"] < history[0]["relevance"]


def test_fixed_zero_weight_turns_a_task_off():
    model, tokenizer = make_model()
    out = model(*batches(tokenizer))
    full = MultiTaskLoss(LossWeights())(out, full_targets())
    no_click = MultiTaskLoss(LossWeights(click=0.0))(out, full_targets())
    assert "click" not in no_click.weights
    assert torch.allclose(full.total - no_click.total, torch.tensor(0.5 * full.parts["click"]), atol=1e-5)


def test_task_without_labels_is_left_out():
    model, tokenizer = make_model()
    out = model(*batches(tokenizer))
    result = MultiTaskLoss(LossWeights(uncertainty=True))(out, TaskTargets(grades=torch.ones(4)))
    assert set(result.parts) == {"relevance"}


def test_temperature_is_learned_and_floored():
    model, tokenizer = make_model()
    out = model(*batches(tokenizer))
    MultiTaskLoss(LossWeights())(out, full_targets()).total.backward()
    assert model.log_scale.grad is not None and model.log_scale.grad.abs() > 0
    with torch.no_grad():
        model.log_scale.fill_(50.0)
    assert model.temperature == pytest.approx(model.config.min_temperature)
