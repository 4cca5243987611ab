"""The faiss vector index over product embeddings."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.serving.vectors import EMBEDDINGS_FILE, MERGED_FILE, VectorIndex, merge_saved, serve_single_threaded

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


def test_merge_saved_adds_replaces_and_removes_in_one_file(tmp_path, index, data):
    ids, matrix = data
    index.save(tmp_path)
    built = (tmp_path / EMBEDDINGS_FILE).read_bytes()
    fresh = np.random.default_rng(1).normal(size=(2, DIM)).astype(np.float32)
    result = merge_saved(tmp_path, [100, 7], fresh, removed=[149, 424242])
    assert result == {"stored": 50, "added": 1, "removed": 1}
    loaded = VectorIndex.load(tmp_path)  # from vectors.npz now
    assert sorted(loaded.ids().tolist()) == sorted([*ids[:-1].tolist(), 7])
    got_ids, got = loaded.lookup([100, 7, 101])
    assert got_ids == [100, 7, 101]
    np.testing.assert_allclose(got, unit(np.vstack([fresh, matrix[1:2]])), atol=1e-6)
    assert (tmp_path / EMBEDDINGS_FILE).read_bytes() == built  # the build's files stay as they were
    assert {p.name for p in tmp_path.iterdir()} >= {MERGED_FILE} and not list(tmp_path.glob("*.tmp"))
    again = merge_saved(tmp_path, [100, 7], fresh, removed=[149])  # a re-run changes nothing
    assert again == {"stored": 50, "added": 0, "removed": 0}
    assert np.array_equal(VectorIndex.load(tmp_path).vectors()[1], loaded.vectors()[1])


def test_concurrent_merges_all_land_and_readers_never_see_half(tmp_path, index):
    index.save(tmp_path)
    rng = np.random.default_rng(2)
    new = {1000 + n: rng.normal(size=(1, DIM)).astype(np.float32) for n in range(12)}
    errors: list[BaseException] = []

    def merge(pid: int) -> None:
        try:
            merge_saved(tmp_path, [pid], new[pid])
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=merge, args=(pid,)) for pid in new]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        loaded = VectorIndex.load(tmp_path)  # every read is one whole state, before or after a merge
        stored = loaded.ids()
        assert len(np.unique(stored)) == len(stored) and set(range(100, 150)) <= set(stored.tolist())
    for thread in threads:
        thread.join()
    assert errors == []
    final = VectorIndex.load(tmp_path).ids().tolist()
    assert len(final) == 62 and set(new) <= set(final)


def test_serving_processes_run_numpy_blas_on_one_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    serve_single_threaded()
    blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert blas and all(info["num_threads"] == 1 for info in blas)
