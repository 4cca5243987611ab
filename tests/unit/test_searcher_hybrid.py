"""The Searcher with a model version attached: dense, RRF and ranked hybrid retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from engine.modeling.config import HeadConfig
from engine.modeling.head_export import export_pair_heads
from engine.modeling.heads import MultiTaskModel
from engine.serving.bundle import load_bundle
from engine.serving.heads import head_scores
from engine.serving.lexical import Filters
from engine.serving.ranker import FEATURES, LinearRanker
from engine.serving.searcher import Searcher, SearchRequest, card_text, passes
from tests.unit.serving_fixtures import build_version_dir, card

CARDS = [
    card(1, "stainless steel water bottle", brand="Hydro", price=25.0, rating=4.8, rating_count=900),
    card(2, "insulated water bottle for kids", brand="Acme", price=12.0, rating=4.1, rating_count=50),
    card(3, "wool winter socks", brand="Acme", price=8.0, rating=3.5, rating_count=20),
    card(4, "usb c charging cable", brand="Volt", price=None, rating=None, rating_count=0),
    card(5, "garden hose with spray nozzle", brand="Hydro", price=40.0, rating=4.4, rating_count=300),
    card(6, "ceramic coffee mug", brand="Acme", price=9.5, rating=4.9, rating_count=1200),
]
BY_ID = {c.id: c for c in CARDS}


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    return build_version_dir(tmp_path_factory.mktemp("hybrid") / "v3", CARDS)


@pytest.fixture(scope="module")
def ranked(tmp_path_factory, tiny_model):
    ranker = LinearRanker(weights={"bm25": 1.0, "rating": 0.5})
    return build_version_dir(tmp_path_factory.mktemp("ranked") / "v4", CARDS, ranker=ranker)


@pytest.fixture
def searcher(built):
    """A Searcher over the catalog with a freshly loaded bundle (apply_changes mutates its vectors)."""
    searcher = Searcher(candidates=50)
    searcher.apply_changes(CARDS, [])
    searcher.attach(load_bundle(built, 3))
    return searcher


def ids(hits) -> list[int]:
    return [pid for pid, _ in hits]


def test_dense_rrf_and_hybrid_return_candidates(searcher):
    for mode in ("dense", "rrf", "hybrid"):
        hits, result, _ = searcher.retrieve("water bottle", mode=mode)
        assert hits and set(ids(hits)) <= set(BY_ID), mode
        assert len(set(ids(hits))) == len(hits)
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True)
    dense, _, _ = searcher.retrieve("water bottle", mode="dense")
    assert len(dense) == len(CARDS)  # the dense list reaches every product, even without a shared word
    rrf, result, _ = searcher.retrieve("water bottle", mode="rrf")
    lexical = ids(result.hits)
    assert set(lexical) == {1, 2} and set(ids(rrf)) == set(lexical) | set(ids(dense))


def test_dense_finds_a_product_by_its_own_text(searcher):
    for c in CARDS:
        hits, _, _ = searcher.retrieve(card_text(c), mode="dense")
        assert hits[0][0] == c.id
        assert hits[0][1] == pytest.approx(1.0, abs=1e-3)


def test_ranker_names(searcher, ranked):
    assert searcher.mode == "hybrid"
    assert searcher.retrieve("bottle", mode="lexical")[2] == "lexical"
    assert searcher.retrieve("bottle", mode="dense")[2] == "dense:v3"
    assert searcher.retrieve("bottle", mode="rrf")[2] == "rrf:v3"
    assert searcher.retrieve("bottle")[2] == "rrf:v3"  # hybrid without a fitted ranker falls back to RRF
    assert searcher.retrieve("   ")[2] == "popularity"
    searcher.attach(load_bundle(ranked, 4))
    assert searcher.retrieve("bottle")[2] == "ranker:v4"
    assert searcher.retrieve("bottle", mode="rrf")[2] == "rrf:v4"
    assert searcher.search(SearchRequest(text="bottle")).ranker == "ranker:v4"
    searcher.attach(None)
    assert searcher.mode == "lexical" and searcher.retrieve("bottle", mode="hybrid")[2] == "lexical"


def test_ranker_orders_hybrid_candidates(searcher, ranked):
    searcher.attach(load_bundle(ranked, 4))
    hits, _, _ = searcher.retrieve("water bottle")
    # bm25 (normalised to 1 at the top) outweighs rating / 5 * 0.5, so both lexical matches lead.
    assert set(ids(hits[:2])) == {1, 2}
    rest = ids(hits[2:])
    ratings = [(BY_ID[pid].rating or 0) for pid in rest]
    assert ratings == sorted(ratings, reverse=True)  # without words in common, rating decides


@pytest.mark.parametrize(
    "filters",
    [
        Filters(brands=("Acme",)),
        Filters(price_min=10.0),
        Filters(price_max=20.0),
        Filters(rating_min=4.5),
        Filters(brands=("Hydro",), price_max=30.0),
    ],
)
def test_filters_apply_to_dense_candidates(searcher, filters):
    expected = {c.id for c in CARDS if passes(c, filters)}
    for mode in ("dense", "rrf", "hybrid"):
        hits, _, _ = searcher.retrieve("something to drink from", filters=filters, mode=mode)
        assert set(ids(hits)) == expected, (mode, filters)


def test_passes_edge_cases():
    unpriced = card(9, "x", brand="Acme", price=None, rating=None)
    assert passes(unpriced, Filters())
    assert not passes(unpriced, Filters(price_min=1.0)) and not passes(unpriced, Filters(price_max=100.0))
    assert not passes(unpriced, Filters(rating_min=1.0))
    assert passes(card(9, "x", price=10.0, rating=4.0), Filters(price_min=10.0, price_max=10.0, rating_min=4.0))
    assert not passes(card(9, "x", brand="Acme"), Filters(brands=("acme",)))  # brand facets match exactly


def test_product_added_after_attach_is_found_by_meaning(searcher):
    bundle = searcher.bundle
    new = card(42, "handmade leather dog collar", brand="", price=15.0)
    assert 42 not in bundle.vectors
    assert searcher.apply_changes([new], []) == 1
    assert 42 in bundle.vectors and len(bundle.vectors) == len(CARDS) + 1
    hits, _, _ = searcher.retrieve("handmade leather dog collar", mode="dense")
    assert hits[0][0] == 42
    stored = bundle.vectors.scores(bundle.product_encoder().encode([card_text(new)])[0], [42])
    assert stored[42] == pytest.approx(1.0, abs=1e-5)


def test_edited_product_is_embedded_again(searcher):
    bundle = searcher.bundle
    query = bundle.encoder.encode_query("bright red umbrella")
    before = bundle.vectors.scores(query, [3])[3]
    edited = card(3, "bright red umbrella", brand="", price=8.0)
    searcher.apply_changes([edited], [])
    after = bundle.vectors.scores(query, [3])[3]
    assert after == pytest.approx(1.0, abs=1e-3) and after > before
    assert searcher.retrieve("bright red umbrella", mode="dense")[0][0][0] == 3


def test_removed_product_leaves_dense_results(searcher):
    bundle = searcher.bundle
    assert searcher.retrieve(card_text(BY_ID[5]), mode="dense")[0][0][0] == 5
    assert searcher.apply_changes([], [5]) == 1
    assert 5 not in bundle.vectors and 5 not in searcher.cards
    for mode in ("dense", "rrf", "hybrid"):
        hits, _, _ = searcher.retrieve("garden hose with spray nozzle", mode=mode)
        assert 5 not in ids(hits) and len(hits) == len(CARDS) - 1


def test_attach_embeds_products_the_version_lacks(tmp_path, tiny_model):
    directory = build_version_dir(tmp_path / "v5", CARDS[:2])
    searcher = Searcher()
    searcher.apply_changes(CARDS, [])
    bundle = load_bundle(directory, 5)
    assert len(bundle.vectors) == 2
    searcher.attach(bundle)
    assert sorted(bundle.vectors.ids().tolist()) == sorted(BY_ID)
    assert searcher.retrieve(card_text(BY_ID[6]), mode="dense")[0][0][0] == 6


def test_candidate_features(searcher):
    candidates, features = searcher.candidate_features("water bottle")
    assert features.shape == (len(candidates), len(FEATURES)) and features.dtype == np.float32
    assert sorted(candidates) == sorted(BY_ID) and len(set(candidates)) == len(candidates)
    col = {name: i for i, name in enumerate(FEATURES)}
    in_both = {pid for pid, row in zip(candidates, features, strict=True) if row[col["in_both"]] == 1.0}
    assert in_both == {1, 2}  # the two lexical matches are also dense candidates
    assert features[:, col["bm25"]].max() == pytest.approx(1.0)
    assert np.all(features[:, col["dense"]] > -1.0001) and np.all(features[:, col["dense"]] < 1.0001)
    assert not features[:, [col["click"], col["purchase"]]].any()  # the version has no trained heads
    few, few_features = searcher.candidate_features("water bottle", limit=2)
    assert len(few) >= 2 and few_features.shape == (len(few), len(FEATURES))
    with pytest.raises(RuntimeError, match="model version"):
        Searcher().candidate_features("water bottle")


class _SyncDuringEmbedding:
    """The bundle's product encoder, with a catalog sync landing while attach() embeds (as a web
    worker's request threads do while a new version loads in the background)."""

    def __init__(self, encoder, during) -> None:
        self.encoder, self.during = encoder, during

    def encode(self, texts):
        during, self.during = self.during, None
        if during is not None:
            during()
        return self.encoder.encode(texts)


def test_product_added_while_attaching_gets_a_vector(built):
    searcher = Searcher()
    searcher.apply_changes(CARDS, [])
    searcher.apply_changes([], [6])  # the version has a vector for 6; the catalog does not: nothing to embed
    searcher.apply_changes([card(7, "plain white t-shirt")], [])  # missing from the version: embedded by attach
    bundle = load_bundle(built, 3)
    late = card(43, "folding camping chair", brand="")
    bundle._product_encoder = _SyncDuringEmbedding(bundle.product_encoder(), lambda: searcher.apply_changes([late], []))
    searcher.attach(bundle)
    assert 43 in searcher.cards and 7 in bundle.vectors
    assert 43 in bundle.vectors  # else the new version could never find it by meaning
    assert searcher.retrieve("folding camping chair", mode="dense")[0][0][0] == 43


@pytest.fixture(scope="module")
def with_heads(tmp_path_factory, tiny_model):
    directory = build_version_dir(tmp_path_factory.mktemp("heads") / "v5", CARDS)
    export_pair_heads(MultiTaskModel(tiny_model.encoder, HeadConfig(mlp_hidden=16)), directory, ["click", "purchase"])
    return directory


def test_the_heads_fill_the_click_and_purchase_features(with_heads):
    searcher = Searcher(candidates=50)
    searcher.apply_changes(CARDS, [])
    bundle = load_bundle(with_heads, 5)
    searcher.attach(bundle)
    candidates, features = searcher.candidate_features("water bottle")
    expected = head_scores(bundle.heads, bundle.vectors, bundle.encoder.encode_query("water bottle"), candidates)
    for name in ("click", "purchase"):
        column = features[:, FEATURES.index(name)]
        assert column == pytest.approx([expected[name][pid] for pid in candidates], abs=1e-6)
        assert np.all((column > 0) & (column < 1))
    bundle.ranker = LinearRanker(weights={"click": 1.0})  # the searcher reads the attached bundle per search
    hits, _, ranker = searcher.retrieve("water bottle", mode="hybrid")
    assert ranker == "ranker:v5"
    assert ids(hits) == sorted(candidates, key=lambda pid: -expected["click"][pid])
