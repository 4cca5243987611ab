"""Batched embedding with the torch encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.modeling.config import HeadConfig
from engine.modeling.encoder import tiny_encoder, tokenize
from engine.modeling.heads import MultiTaskModel
from engine.modeling.inference import embed_texts
from engine.serving.product_text import product_text

TEXTS = [
    "short",
    "a considerably longer product title with many words in it for sorting",
    "",
    "medium length text here",
    "x",
    "another fairly long one about stainless steel insulated water bottles",
    "tea",
]


@pytest.fixture(scope="module")
def tiny():
    encoder, tokenizer = tiny_encoder(seed=5)
    return encoder.eval(), tokenizer


def one_by_one(encoder, tokenizer, texts: list[str]) -> np.ndarray:
    with torch.inference_mode():
        return np.stack([encoder.encode_batch(tokenize(tokenizer, [t], 128))[0].numpy() for t in texts])


def test_order_is_restored_after_length_sorting(tiny):
    encoder, tokenizer = tiny
    got = embed_texts(encoder, tokenizer, TEXTS, batch_size=3, device="cpu")
    assert got.shape == (len(TEXTS), encoder.dim) and got.dtype == np.float32
    assert np.allclose(got, one_by_one(encoder, tokenizer, TEXTS), atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_progress_is_reported_per_batch(tiny):
    encoder, tokenizer = tiny
    calls: list[tuple[int, int]] = []
    embed_texts(encoder, tokenizer, TEXTS, batch_size=3, device="cpu", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 7), (6, 7), (7, 7)]


def test_empty_texts_and_empty_list(tiny):
    encoder, tokenizer = tiny
    got = embed_texts(encoder, tokenizer, ["", "", "tea"], device="cpu")
    assert np.isfinite(got).all() and np.allclose(got[0], got[1])
    assert embed_texts(encoder, tokenizer, [], device="cpu").shape == (0, encoder.dim)


def test_multitask_model_is_accepted_and_mode_restored(tiny):
    encoder, tokenizer = tiny
    model = MultiTaskModel(encoder, HeadConfig(mlp_hidden=8))
    model.train()
    got = embed_texts(model, tokenizer, TEXTS[:3], device="cpu", max_length=4)
    assert model.encoder.training  # dropout was off only while embedding
    model.eval()
    with torch.inference_mode():
        expected = encoder.encode_batch(tokenize(tokenizer, TEXTS[:3], 4)).numpy()
    assert np.allclose(got, expected, atol=1e-5)  # max_length truncation applies


def test_product_text_uses_fields_and_never_fails():
    text = product_text(
        title="Trail Runner 3",
        brand="Acme",
        category="Shoes > Running",
        bullet_points="- light\n\n- grippy sole\n- vegan\n- fourth bullet",
        description="ignored",
    )
    assert text == "Trail Runner 3. brand: Acme. category: Shoes > Running. light. grippy sole. vegan"
    assert product_text(title="", brand="Acme", description="A mug") == "brand: Acme. A mug"
    assert product_text() == ""
    assert len(product_text(title="word " * 500, max_chars=100)) <= 100
