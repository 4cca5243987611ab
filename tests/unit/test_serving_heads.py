"""The click and purchase heads with numpy (engine.serving.heads) against the torch PairHeads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.modeling.config import HeadConfig
from engine.modeling.encoder import tokenize
from engine.modeling.head_export import export_pair_heads
from engine.modeling.heads import MultiTaskModel
from engine.modeling.inference import embed_texts
from engine.serving.bundle import PRODUCT_MAX_LENGTH, load_bundle
from engine.serving.heads import (
    FORMAT_KEY,
    HEADS_FILE,
    HeadsError,
    candidate_head_scores,
    erf,
    gelu,
    head_scores,
    heads_in,
    load_heads,
)
from engine.serving.ranker import LinearRanker
from engine.serving.searcher import card_text
from engine.serving.vectors import VectorIndex
from tests.unit.serving_fixtures import QUERY_MAX_LENGTH, build_version_dir, card

CARDS = [
    card(1, "stainless steel water bottle"),
    card(2, "insulated water bottle for kids"),
    card(3, "wool winter socks"),
    card(4, "usb c charging cable"),
    card(5, "garden hose with spray nozzle"),
]
QUERIES = ["water bottle", "socks", "a long query about a cable that charges phones quickly and safely", ""]


@pytest.fixture(scope="module")
def model(tiny_model) -> MultiTaskModel:
    """The tiny encoder with heads whose first layers are scaled up, so GELU sees its whole curve."""
    torch.manual_seed(3)
    model = MultiTaskModel(tiny_model.encoder, HeadConfig(mlp_hidden=24)).eval()
    with torch.no_grad():
        model.click_head.net[0].weight.mul_(8.0)
        model.purchase_head.net[0].weight.mul_(4.0)
        model.purchase_head.net[3].bias.fill_(-1.5)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    directory = tmp_path_factory.mktemp("heads")
    export_pair_heads(model, directory, ["click", "purchase"])
    return directory


def torch_probabilities(model: MultiTaskModel, query: torch.Tensor, products: torch.Tensor) -> dict[str, np.ndarray]:
    repeated = query.reshape(1, -1).expand(products.shape[0], -1)
    with torch.no_grad():
        return {
            "click": torch.sigmoid(model.click_head(repeated, products)).numpy(),
            "purchase": torch.sigmoid(model.purchase_head(repeated, products)).numpy(),
        }


def test_erf_and_gelu_match_the_exact_functions():
    grid = np.linspace(-12, 12, 4801, dtype=np.float32)
    exact_erf = np.array([math.erf(float(x)) for x in grid])
    assert np.abs(erf(grid) - exact_erf).max() < 5e-7
    assert np.abs(gelu(grid) - torch.nn.functional.gelu(torch.from_numpy(grid)).numpy()).max() < 2e-6


def test_numpy_heads_match_torch_on_real_embeddings(model, exported, tiny_model):
    heads = load_heads(exported)
    assert heads is not None and heads.names == ("click", "purchase") and heads.dim == tiny_model.encoder.dim
    products = torch.from_numpy(
        embed_texts(tiny_model.encoder, tiny_model.tokenizer, [card_text(c) for c in CARDS], device="cpu")
    )
    for text in QUERIES:
        with torch.no_grad():
            query = tiny_model.encoder.encode_batch(tokenize(tiny_model.tokenizer, [text], QUERY_MAX_LENGTH))[0]
        expected = torch_probabilities(model, query, products)
        got = heads.probabilities(query.numpy(), products.numpy())
        for name in ("click", "purchase"):
            assert got[name].shape == (len(CARDS),)
            np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0)
    spread = np.concatenate([got["click"], got["purchase"]])
    assert spread.std() > 0.01  # the comparison is not between two constants


def test_numpy_heads_match_torch_on_random_unit_vectors(model, exported):
    heads = load_heads(exported)
    generator = torch.Generator().manual_seed(0)
    products = torch.nn.functional.normalize(torch.randn(64, heads.dim, generator=generator), dim=-1)
    query = torch.nn.functional.normalize(torch.randn(heads.dim, generator=generator), dim=-1)
    expected = torch_probabilities(model, query, products)
    got = heads.probabilities(query.numpy(), products.numpy())
    for name in ("click", "purchase"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0)
    assert heads.probabilities(query.numpy(), np.empty((0, heads.dim)))["click"].shape == (0,)


def test_serving_reads_the_vectors_the_heads_were_trained_on(model, exported, tmp_path, tiny_model):
    """The query from the ONNX encoder and the products from the VectorIndex are the torch encoder's
    unit vectors (training's inputs), so the heads score the same pairs at serving."""
    directory = build_version_dir(tmp_path / "v1", CARDS)
    (directory / HEADS_FILE).write_bytes((exported / HEADS_FILE).read_bytes())
    bundle = load_bundle(directory, 1)
    torch_products = embed_texts(
        tiny_model.encoder, tiny_model.tokenizer, [card_text(c) for c in CARDS], max_length=PRODUCT_MAX_LENGTH
    )
    ids, stored = bundle.vectors.lookup([c.id for c in CARDS])
    assert ids == [c.id for c in CARDS]
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(stored, torch_products, atol=1e-6)
    with torch.no_grad():
        torch_query = tiny_model.encoder.encode_batch(
            tokenize(tiny_model.tokenizer, ["water bottle"], QUERY_MAX_LENGTH)
        )
    served_query = bundle.encoder.encode_query("water bottle")
    assert abs(np.linalg.norm(served_query) - 1.0) < 1e-6
    np.testing.assert_allclose(served_query, torch_query[0].numpy(), atol=1e-5)
    served = head_scores(bundle.heads, bundle.vectors, served_query, ids)
    expected = torch_probabilities(model, torch_query[0], torch.from_numpy(torch_products))
    for name in ("click", "purchase"):
        np.testing.assert_allclose([served[name][i] for i in ids], expected[name], atol=1e-5, rtol=0)


def test_only_the_top_candidates_by_rrf_are_scored(exported):
    heads = load_heads(exported)
    vectors = VectorIndex(heads.dim)
    vectors.build(range(1, 9), np.random.default_rng(1).normal(size=(8, heads.dim)))
    query = vectors.lookup([1])[1][0]
    dense = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]
    lexical = [(2, 9.0), (5, 8.0), (6, 7.0), (99, 6.0)]  # 99 has no vector: left out
    scores = candidate_head_scores(heads, None, vectors, query, dense, lexical, top=3)
    assert set(scores) == {"click", "purchase"} and set(scores["click"]) == {2, 1, 5}  # RRF's best three
    assert set(candidate_head_scores(heads, None, vectors, query, dense, lexical)["click"]) == {1, 2, 3, 4, 5, 6}
    assert candidate_head_scores(None, None, vectors, query, dense, lexical) == {}
    ignoring = LinearRanker(weights={"dense": 1.0, "click": 0.0})
    assert candidate_head_scores(heads, ignoring, vectors, query, dense, lexical) == {}  # they could not matter
    using = LinearRanker(weights={"dense": 1.0, "purchase": 0.3})
    assert set(candidate_head_scores(heads, using, vectors, query, dense, lexical, top=2)["purchase"]) == {1, 2}


def test_absent_partial_and_foreign_files(tmp_path, exported):
    assert load_heads(tmp_path) is None and heads_in(tmp_path / HEADS_FILE) == ()
    assert heads_in(exported / HEADS_FILE) == ("click", "purchase")
    with np.load(exported / HEADS_FILE) as data:
        arrays = dict(data)
    np.savez(tmp_path / HEADS_FILE, **{k: v for k, v in arrays.items() if k != "click.3.bias"})
    with pytest.raises(HeadsError, match="click lacks click.3.bias"):
        load_heads(tmp_path)
    np.savez(tmp_path / HEADS_FILE, **{k: v for k, v in arrays.items() if k != FORMAT_KEY})
    with pytest.raises(HeadsError, match="not a kairos-pair-heads"):
        load_heads(tmp_path)
    np.savez(tmp_path / HEADS_FILE, **{**arrays, "click.0.bias": np.zeros(3, np.float32)})
    with pytest.raises(HeadsError, match="inconsistent shapes"):
        load_heads(tmp_path)
    np.savez(tmp_path / HEADS_FILE, **{FORMAT_KEY: arrays[FORMAT_KEY]})
    assert load_heads(tmp_path) is None  # a file without any head serves none
