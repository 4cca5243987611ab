"""Fine-tuning a tiny model: the loss goes down, resuming equals never stopping, cancel stops."""

from __future__ import annotations

import pytest
import torch

from engine.modeling.config import HeadConfig, LossWeights, ModelConfig
from engine.modeling.encoder import tiny_encoder
from engine.modeling.heads import MultiTaskModel
from engine.training.batching import plan_batches
from engine.training.checkpoints import PREFIX
from engine.training.dataset import PairExample, TrainingSet
from engine.training.finetune import FineTuneConfig, fine_tune
from engine.training.params import with_categories

PRODUCTS = {
    1: "red ceramic coffee mug",
    2: "blue glass coffee mug",
    3: "wireless bluetooth headphones",
    4: "noise cancelling over ear headphones",
    5: "garden hose fifty feet",
    6: "expandable garden hose with nozzle",
    7: "leather watch strap brown",
    8: "stainless steel watch band",
}
CATEGORY = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}  # 7 and 8 have no known category
QUERIES = {"coffee mug": (1, 2), "headphones": (3, 4), "garden hose": (5, 6), "watch strap": (7, 8)}


def training_set() -> TrainingSet:
    examples = []
    for query, good in QUERIES.items():
        for pid in PRODUCTS:
            grade = 1.0 if pid in good else 0.0
            examples.append(PairExample(query, pid, grade, grade, grade / 2, weight=1.0 + pid / 10, impressions=3))
    return TrainingSet(
        examples=examples,
        product_text=dict(PRODUCTS),
        categories=("mugs", "audio", "garden"),
        product_category=dict(CATEGORY),
    )


def tiny(seed: int = 0) -> MultiTaskModel:
    encoder, _ = tiny_encoder(seed=seed)
    model = MultiTaskModel(encoder, HeadConfig(mlp_hidden=16, dropout=0.1))
    model, _ = with_categories(model, ModelConfig(heads=HeadConfig(mlp_hidden=16)), ("mugs", "audio", "garden"), 1)
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_encoder()[1]


def settings(**overrides) -> FineTuneConfig:
    values = dict(
        method="full",
        learning_rate=3e-3,
        head_learning_rate=3e-3,
        epochs=6,
        batch_size=8,
        pairs_per_query=4,
        extra_negatives=2,
        checkpoint_every=3,
        product_max_length=16,
        loss=LossWeights(uncertainty=False),
    )
    values.update(overrides)
    return FineTuneConfig(**values)


def weights(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


def test_the_loss_goes_down(tokenizer):
    result = fine_tune(tiny(), tokenizer, training_set(), settings())
    totals = [row["total"] for row in result.losses]
    assert result.steps == result.planned_steps == len(totals) > 10
    assert sum(totals[-4:]) / 4 < 0.7 * sum(totals[:4]) / 4
    assert {"relevance", "click", "purchase", "category"} <= set(result.losses[0])
    assert result.pairs_trained == 6 * len(training_set().examples) and result.pairs_per_second > 0
    assert not result.model.training  # handed back in eval mode


def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(tokenizer, tmp_path):
    data = training_set()
    straight = fine_tune(tiny(), tokenizer, data, settings(), checkpoint_dir=tmp_path / "a")
    calls = iter(range(1000))
    stopped = fine_tune(
        tiny(), tokenizer, data, settings(), checkpoint_dir=tmp_path / "b", should_stop=lambda: next(calls) >= 7
    )
    assert stopped.stopped == "cancelled" and stopped.steps == 7
    assert [p.name for p in (tmp_path / "b").iterdir()] == [f"{PREFIX}{6:07d}.pt"]  # only the newest is kept
    resumed = fine_tune(tiny(), tokenizer, data, settings(), checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from == 6 and resumed.steps == straight.steps
    assert resumed.losses == straight.losses  # the step replayed after the checkpoint is the same step
    a, b = weights(straight.model), weights(resumed.model)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_checkpoint_of_other_settings_is_not_resumed(tokenizer, tmp_path):
    data = training_set()
    fine_tune(tiny(), tokenizer, data, settings(epochs=1), checkpoint_dir=tmp_path)
    again = fine_tune(tiny(), tokenizer, data, settings(epochs=1, learning_rate=1e-3), checkpoint_dir=tmp_path)
    assert again.resumed_from == 0


def test_cancel_stops_between_steps(tokenizer):
    logs: list[str] = []
    result = fine_tune(tiny(), tokenizer, training_set(), settings(), should_stop=lambda: True, log=logs.append)
    assert (result.steps, result.stopped, result.losses) == (0, "cancelled", [])
    assert any("stopped (cancelled)" in line for line in logs)
    timed = fine_tune(tiny(), tokenizer, training_set(), settings(max_seconds=1e-9))
    assert timed.stopped == "time limit" and timed.steps <= 1


def test_top_layers_only_leaves_the_rest_alone(tokenizer):
    model = tiny()
    before = weights(model)
    result = fine_tune(model, tokenizer, training_set(), settings(method="top_layers", top_layers=1, epochs=1))
    after = weights(result.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".layer.1." in k or not k.startswith("encoder.") for k in changed)
    assert not any("embeddings" in k or ".layer.0." in k for k in changed)
    assert 0 < result.trainable_parameters < sum(p.numel() for p in model.parameters())


def test_batches_mix_positives_with_their_skipped_products():
    data = training_set()
    plans = plan_batches(data.examples, list(PRODUCTS), 8, 4, 2, epochs=2, seed=5)
    assert plans == plan_batches(data.examples, list(PRODUCTS), 8, 4, 2, epochs=2, seed=5)
    rows = [r for plan in plans for r in plan.rows]
    assert sorted(rows) == sorted(list(range(len(data.examples))) * 2)  # every pair once per epoch
    for plan in plans:
        assert len(plan.rows) <= 8 and len(plan.extra_products) <= 2
        assert not set(plan.extra_products) & {data.examples[i].product_id for i in plan.rows}
        for query in {data.examples[i].query for i in plan.rows}:
            grades = [data.examples[i].grade for i in plan.rows if data.examples[i].query == query]
            assert max(grades) > 0 and min(grades) == 0  # each group has a positive and a hard negative
    with pytest.raises(ValueError):
        plan_batches(data.examples, [], 1, 1, 0, 1, 0)


def test_config_from_job_params():
    config = FineTuneConfig.from_dict({"method": "full", "loss": {"category": 0.0}, "epochs": 1})
    assert config.method == "full" and config.loss.category == 0.0 and config.to_dict()["loss"]["relevance"] == 1.0
    with pytest.raises(TypeError):
        FineTuneConfig.from_dict({"learning_rat": 1})
    with pytest.raises(ValueError, match="method"):
        fine_tune(tiny(), tiny_encoder()[1], training_set(), settings(method="everything"))


def test_lora_trains_adapters_and_folds_them_back(tokenizer):
    pytest.importorskip("peft")
    model = tiny()
    before = weights(model)
    result = fine_tune(model, tokenizer, training_set(), settings(method="lora", lora_rank=4, epochs=2))
    after = weights(result.model)
    assert after.keys() == before.keys()  # a plain transformer again, ready for export
    assert not any("lora" in k for k in after)
    assert any(not torch.equal(before[k], after[k]) for k in before if ".attention." in k)
    embeddings = "encoder.transformer.embeddings.word_embeddings.weight"
    assert torch.equal(before[embeddings], after[embeddings])  # not an adapter target
    assert result.trainable_parameters < sum(p.numel() for p in tiny().parameters())
