"""The faiss vector index over product embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from engine.serving.vectors import VectorIndex

DIM = 8


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return np.arange(100, 150), rng.normal(size=(50, DIM)).astype(np.float32)


@pytest.fixture
def index(data) -> VectorIndex:
    index = VectorIndex(DIM)
    index.build(*data)
    return index


def brute_force(matrix: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = unit(matrix) @ (query / np.linalg.norm(query))
    return [int(ids[i]) for i in np.argsort(-scores)[:k]]


def test_search_returns_nearest_as_cosine(index, data):
    ids, matrix = data
    query = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    hits = index.search(query, 5)
    assert [pid for pid, _ in hits] == brute_force(matrix, ids, query, 5)
    best_id, best_score = hits[0]
    expected = unit(matrix[ids == best_id])[0] @ (query / np.linalg.norm(query))
    assert best_score == pytest.approx(float(expected), abs=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    # A stored vector finds itself first, whatever its length.
    assert index.search(3 * matrix[7], 1)[0] == (107, pytest.approx(1.0, abs=1e-5))


def test_k_larger_than_index_and_empty_index(index):
    assert len(index.search(np.ones(DIM, np.float32), 500)) == 50
    assert VectorIndex(DIM).search(np.ones(DIM, np.float32), 5) == []


def test_upsert_replaces_and_adds(index, data):
    _, matrix = data
    target = matrix[0]
    index.upsert([120, 999], np.stack([target, -target]))
    assert len(index) == 51 and 999 in index
    top_two = [pid for pid, _ in index.search(target, 2)]
    assert sorted(top_two) == [100, 120]  # 120 now holds 100's vector
    assert index.search(-target, 1)[0][0] == 999
    # A repeated id in one call: the last vector wins and the id is stored once.
    index.upsert([555, 555], np.stack([target, matrix[1]]))
    assert len(index) == 52
    assert index.search(matrix[1], 2)[0][0] in (101, 555)
    assert np.allclose(dict(zip(*index.vectors(), strict=True))[555], unit(matrix[1:2])[0], atol=1e-6)


def test_remove_deletes(index, data):
    _, matrix = data
    assert index.remove([100, 101, 12345]) == 2
    assert len(index) == 48 and 100 not in index and 102 in index
    assert all(pid not in (100, 101) for pid, _ in index.search(matrix[0], 48))
    assert index.remove([]) == 0


def test_save_and_load_round_trip(tmp_path, index, data):
    _, matrix = data
    index.upsert([7], matrix[:1])
    index.remove([149])
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert loaded.dim == DIM and len(loaded) == len(index)
    assert sorted(loaded.ids().tolist()) == sorted(index.ids().tolist())
    query = matrix[5] + matrix[9]
    assert loaded.search(query, 10) == index.search(query, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.npy", "ids.npy"]


def test_bad_input_is_refused(index):
    with pytest.raises(ValueError, match="dimensions"):
        index.upsert([1], np.ones((1, DIM + 1), np.float32))
    with pytest.raises(ValueError, match="unique"):
        VectorIndex(DIM).build([1, 1], np.ones((2, DIM), np.float32))
    with pytest.raises(ValueError, match="ids for"):
        index.upsert([1, 2], np.ones((1, DIM), np.float32))
    with pytest.raises(ValueError, match="finite"):
        index.upsert([1], np.full((1, DIM), np.nan, np.float32))


def test_scores_gives_exact_cosines_for_chosen_ids(index, data):
    ids, matrix = data
    query = matrix[3] - matrix[4]
    got = index.scores(query, [103, 140, 424242])
    assert set(got) == {103, 140}  # an id without a vector is left out
    for pid in (103, 140):
        expected = unit(matrix[ids == pid])[0] @ (query / np.linalg.norm(query))
        assert got[pid] == pytest.approx(float(expected), abs=1e-5)
    assert index.scores(query, []) == {}
