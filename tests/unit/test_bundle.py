"""Loading a model version's serving artifacts, and refusing every kind of broken directory."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.modeling.config import HeadConfig
from engine.modeling.export import FP32_FILE, INT8_FILE
from engine.modeling.head_export import export_pair_heads
from engine.modeling.heads import MultiTaskModel
from engine.serving.bundle import CHECKSUMS, MANIFEST, RANKER, BundleError, load_bundle, write_manifest
from engine.serving.heads import HEADS_FILE, arrays_for
from engine.serving.ranker import LinearRanker
from engine.serving.vectors import EMBEDDINGS_FILE, IDS_FILE
from tests.unit.serving_fixtures import build_version_dir, card

CARDS = [card(1, "stainless steel water bottle"), card(2, "wool winter socks"), card(3, "usb c charging cable")]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    return build_version_dir(tmp_path_factory.mktemp("built") / "v1", CARDS)


@pytest.fixture
def version_dir(built, tmp_path):
    """A private copy of a good version directory, free to break, its manifest without checksums
    (as one written before they existed): each test below reaches the loader's own checks."""
    directory = shutil.copytree(built, tmp_path / "v1")
    data = manifest(directory)
    data.pop(CHECKSUMS)
    (directory / MANIFEST).write_text(json.dumps(data))
    return directory


@pytest.fixture
def signed_dir(built, tmp_path):
    """A private copy of a good version directory with the checksums its build wrote."""
    return shutil.copytree(built, tmp_path / "signed")


def manifest(directory) -> dict:
    return json.loads((directory / MANIFEST).read_text())


def test_loads_a_good_directory(version_dir, tiny_model):
    bundle = load_bundle(version_dir, 7)
    assert (bundle.version_id, bundle.name, bundle.retrieval_mode) == (7, "v7", "hybrid")
    assert bundle.encoder.variant == "fp32"  # the manifest's serve_variant wins over the default int8
    assert len(bundle.vectors) == 3 and bundle.vectors.dim == tiny_model.encoder.dim
    assert sorted(bundle.vectors.ids().tolist()) == [1, 2, 3]
    assert bundle.ranker is None
    query = bundle.encoder.encode_query("wool winter socks. brand: Acme")
    assert bundle.vectors.search(query, 1)[0][0] == 2


def test_ranker_variant_and_mode_override(version_dir):
    LinearRanker(weights={"dense": 1.0, "bm25": 0.5}).save(version_dir / RANKER)
    write_manifest(version_dir, "rrf", {"serve_variant": "int8"})
    bundle = load_bundle(version_dir, 1)
    assert bundle.ranker is not None and bundle.ranker.weights == {"dense": 1.0, "bm25": 0.5}
    assert bundle.encoder.variant == "int8" and bundle.retrieval_mode == "rrf"
    assert load_bundle(version_dir, 1, retrieval_mode="dense").retrieval_mode == "dense"


def test_product_encoder_is_fp32_with_product_length(version_dir):
    bundle = load_bundle(version_dir, 1)
    encoder = bundle.product_encoder()
    assert encoder.variant == "fp32" and encoder.max_length == 128 and bundle.product_encoder() is encoder


def test_missing_manifest(version_dir):
    (version_dir / MANIFEST).unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(version_dir, 1)


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="incomplete or missing"):
        load_bundle(tmp_path / "v404", 404)


@pytest.mark.parametrize(("variant", "file"), [("fp32", FP32_FILE), ("int8", INT8_FILE)])
def test_deleted_onnx_file(version_dir, variant, file):
    write_manifest(version_dir, "hybrid", {"serve_variant": variant})
    (version_dir / file).unlink()
    with pytest.raises(BundleError, match=f"artifact {file} is missing"):
        load_bundle(version_dir, 1)
    data = manifest(version_dir)
    data.pop(CHECKSUMS)
    (version_dir / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="cannot load"):  # without checksums, the loader finds it
        load_bundle(version_dir, 1)


def test_garbage_onnx_file(version_dir):
    (version_dir / FP32_FILE).write_bytes(b"not a model")
    with pytest.raises(BundleError, match="cannot load"):
        load_bundle(version_dir, 1)


def test_truncated_embeddings(version_dir):
    path = version_dir / EMBEDDINGS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleError, match="cannot load"):
        load_bundle(version_dir, 1)


def test_garbage_embeddings(version_dir):
    (version_dir / EMBEDDINGS_FILE).write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BundleError, match="cannot load"):
        load_bundle(version_dir, 1)


def test_ids_and_embeddings_disagree_in_length(version_dir):
    np.save(version_dir / IDS_FILE, np.array([1, 2], dtype=np.int64))
    with pytest.raises(BundleError, match="2 ids for 3 vectors"):
        load_bundle(version_dir, 1)


def test_nan_in_embeddings(version_dir):
    matrix = np.load(version_dir / EMBEDDINGS_FILE)
    matrix[1, 0] = np.nan
    np.save(version_dir / EMBEDDINGS_FILE, matrix)
    with pytest.raises(BundleError, match="finite"):
        load_bundle(version_dir, 1)


def test_embedding_dim_differs_from_encoder(version_dir):
    np.save(version_dir / EMBEDDINGS_FILE, np.eye(3, 5, dtype=np.float32))
    with pytest.raises(BundleError, match="encoder dim 32 != embedding dim 5"):
        load_bundle(version_dir, 1)


def test_no_embeddings(version_dir, tiny_model):
    np.save(version_dir / EMBEDDINGS_FILE, np.empty((0, tiny_model.encoder.dim), dtype=np.float32))
    np.save(version_dir / IDS_FILE, np.empty(0, dtype=np.int64))
    with pytest.raises(BundleError, match="no product embeddings"):
        load_bundle(version_dir, 1)


def test_unknown_retrieval_mode(version_dir):
    write_manifest(version_dir, "telepathy")
    with pytest.raises(BundleError, match="unknown retrieval mode 'telepathy'"):
        load_bundle(version_dir, 1)
    write_manifest(version_dir, "hybrid")
    with pytest.raises(BundleError, match="unknown retrieval mode 'bm42'"):
        load_bundle(version_dir, 1, retrieval_mode="bm42")


def test_corrupt_manifest_and_ranker(version_dir):
    (version_dir / RANKER).write_text("{not json")
    with pytest.raises(BundleError, match="cannot load"):
        load_bundle(version_dir, 1)
    (version_dir / RANKER).unlink()
    (version_dir / MANIFEST).write_text("[1, 2")
    with pytest.raises(BundleError, match="cannot load"):
        load_bundle(version_dir, 1)


def test_heads_load_when_present_and_are_optional(version_dir, tiny_model):
    assert load_bundle(version_dir, 1).heads is None  # a version built before heads.npz, or zero-shot
    export_pair_heads(MultiTaskModel(tiny_model.encoder, HeadConfig(mlp_hidden=8)), version_dir, ["click"])
    heads = load_bundle(version_dir, 1).heads
    assert heads is not None and heads.names == ("click",) and heads.dim == tiny_model.encoder.dim


def test_heads_for_other_embeddings_or_corrupt_are_refused(version_dir):
    layers = {"0.weight": np.zeros((4, 20)), "0.bias": np.zeros(4), "3.weight": np.zeros((1, 4)), "3.bias": np.zeros(1)}
    np.savez(version_dir / HEADS_FILE, **arrays_for({"click": layers}))
    with pytest.raises(BundleError, match="heads read 5-dim vectors, the embeddings have 32"):
        load_bundle(version_dir, 1)
    (version_dir / HEADS_FILE).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(BundleError, match="cannot load"):
        load_bundle(version_dir, 1)


def test_the_manifest_lists_every_artifact_with_its_checksum(signed_dir):
    listed = manifest(signed_dir)[CHECKSUMS]
    on_disk = {p.relative_to(signed_dir).as_posix() for p in signed_dir.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(listed) == on_disk and EMBEDDINGS_FILE in listed and FP32_FILE in listed
    assert all(len(digest) == 64 for digest in listed.values())
    assert load_bundle(signed_dir, 1).vectors.dim > 0


def test_readable_but_changed_embeddings_are_refused(signed_dir):
    # Rolled by one row: every vector is a real one and the file loads, but each id has its neighbour's vector.
    matrix = np.load(signed_dir / EMBEDDINGS_FILE)
    np.save(signed_dir / EMBEDDINGS_FILE, np.roll(matrix, 1, axis=0))
    with pytest.raises(BundleError, match=f"{EMBEDDINGS_FILE} does not match the checksum"):
        load_bundle(signed_dir, 1)


def test_a_listed_artifact_that_is_gone_is_refused(signed_dir):
    (signed_dir / INT8_FILE).unlink()  # not even the one served (fp32): the directory is not what was built
    with pytest.raises(BundleError, match=f"artifact {INT8_FILE} is missing"):
        load_bundle(signed_dir, 1)
