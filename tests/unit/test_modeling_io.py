"""Saving and loading model version directories."""

from __future__ import annotations

import json

import pytest
import torch

from engine.modeling.config import EncoderConfig, HeadConfig, LossWeights, ModelConfig
from engine.modeling.encoder import tiny_encoder, tokenize
from engine.modeling.heads import MultiTaskModel
from engine.modeling.io import (
    REQUIRED_FILES,
    is_complete,
    load_model_version,
    read_metrics,
    save_model_version,
    write_metrics,
)

CONFIG = ModelConfig(
    encoder=EncoderConfig(query_max_length=16),
    heads=HeadConfig(mlp_hidden=16, num_categories=2),
    loss=LossWeights(uncertainty=True),
    categories=("Shoes", "Tea"),
    base_model="tiny",
)


@pytest.fixture(scope="module")
def trained():
    encoder, tokenizer = tiny_encoder(seed=3)
    model = MultiTaskModel(encoder, CONFIG.heads)
    with torch.no_grad():  # move every weight off its initial value, as training would
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model.eval(), tokenizer


def outputs(model, tokenizer):
    queries = tokenize(tokenizer, ["running shoes", "", "green tea bags"], 16)
    products = tokenize(tokenizer, ["Nike shoes", "Tea, 100 bags", "Mug"], 32)
    with torch.inference_mode():
        return model.eval()(queries, products)


def test_round_trip_gives_identical_outputs(tmp_path, trained):
    model, tokenizer = trained
    target = save_model_version(model, tokenizer, CONFIG, tmp_path / "v1", metrics={"ndcg@10": 0.41})
    assert is_complete(target)
    loaded = load_model_version(target)
    assert loaded.config == CONFIG
    assert loaded.metrics == {"ndcg@10": 0.41}
    assert loaded.tokenizer("Green tea")["input_ids"] == tokenizer("Green tea")["input_ids"]
    before, after = outputs(model, tokenizer), outputs(loaded.model, loaded.tokenizer)
    for name in ("query", "product", "similarity_logits", "click_logits", "purchase_logits", "category_logits"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name
    assert not loaded.model.training


def test_existing_version_is_never_overwritten(tmp_path, trained):
    model, tokenizer = trained
    save_model_version(model, tokenizer, CONFIG, tmp_path / "v1")
    with pytest.raises(FileExistsError):
        save_model_version(model, tokenizer, CONFIG, tmp_path / "v1")


def test_failure_leaves_no_partial_directory(tmp_path, trained):
    model, tokenizer = trained

    def broken_export(directory):
        (directory / "query_encoder.onnx").write_bytes(b"half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        save_model_version(model, tokenizer, CONFIG, tmp_path / "versions" / "v2", extra=broken_export)
    assert list((tmp_path / "versions").iterdir()) == []


def test_extra_files_are_published_with_the_version(tmp_path, trained):
    model, tokenizer = trained
    target = save_model_version(
        model, tokenizer, CONFIG, tmp_path / "v3", extra=lambda d: (d / "note.txt").write_text("hi")
    )
    assert (target / "note.txt").read_text() == "hi"
    assert [p.name for p in tmp_path.iterdir()] == ["v3"]


def test_incomplete_directory_is_refused(tmp_path, trained):
    model, tokenizer = trained
    target = save_model_version(model, tokenizer, CONFIG, tmp_path / "v4")
    (target / REQUIRED_FILES[1]).unlink()
    assert not is_complete(target)
    with pytest.raises(FileNotFoundError):
        load_model_version(target)


def test_unknown_format_is_refused(tmp_path, trained):
    model, tokenizer = trained
    target = save_model_version(model, tokenizer, CONFIG, tmp_path / "v5")
    stored = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**stored, "format": "other/9"}))
    with pytest.raises(ValueError, match="unknown model format"):
        load_model_version(target)


def test_metrics_can_be_replaced_after_publishing(tmp_path, trained):
    model, tokenizer = trained
    target = save_model_version(model, tokenizer, CONFIG, tmp_path / "v6")
    assert read_metrics(target) == {}
    write_metrics(target, {"mrr": 0.5})
    assert read_metrics(target) == {"mrr": 0.5}
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".")) == []


def test_config_round_trips_and_validates():
    assert ModelConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict()))) == CONFIG
    with pytest.raises(ValueError):
        ModelConfig(heads=HeadConfig(num_categories=3), categories=("a",))
    with pytest.raises(ValueError):
        LossWeights(bce_reduction="sum")
