"""The vector index over product embeddings: exact inner-product search with faiss.

Flat (exact) search is the right choice up to a few hundred thousand products on one web
worker: no training, updates in place, and recall 1.0. Vectors are L2-normalised on the
way in, so inner product is cosine similarity.

On disk a version holds embeddings.npy and ids.npy as its build wrote them; products
embedded later (the inference.embed_products task) are merged into vectors.npz, which
holds both arrays in one file so that a merge publishes them with one rename. load()
prefers vectors.npz when it exists.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

EMBEDDINGS_FILE = "embeddings.npy"
IDS_FILE = "ids.npy"
MERGED_FILE = "vectors.npz"  # ids and embeddings together, written by merge_saved
LOCK_FILE = ".vectors.lock"


_SERVING = {"single_threaded": False}


def serve_single_threaded() -> None:
    """Search with one OpenMP thread from now on, in this process: right for a web worker that
    answers one query per request thread (measured here: 12 ms with 2 threads under load,
    0.26 ms with 1). Only serving processes call it; a training worker keeps torch's threads.

    numpy's BLAS gets one thread as well: the click/purchase heads' matrix products
    (engine.serving.heads) took 45 ms at the median with OpenBLAS threads fighting for a busy
    machine's cores, 2.5 ms with one (bench/heads_cost.py)."""
    if _SERVING["single_threaded"]:
        return
    _SERVING["single_threaded"] = True
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it, OPENBLAS_NUM_THREADS=1 in the environment does the same
        return
    threadpool_limits(limits=1, user_api="blas")


def _ids_array(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _normalized(matrix: np.ndarray, dim: int, already: bool = False) -> np.ndarray:
    matrix = np.array(matrix, dtype=np.float32, copy=True, order="C", ndmin=2)
    if matrix.shape[1] != dim:
        raise ValueError(f"vectors have {matrix.shape[1]} dimensions, the index {dim}")
    if not np.isfinite(matrix).all():
        raise ValueError("vectors must be finite")
    if not already:
        faiss.normalize_L2(matrix)
    return matrix


class VectorIndex:
    """Product id -> unit vector, with exact top-k search; thread-safe."""

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._members: set[int] = set()  # faiss keeps its id map out of Python's reach
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __contains__(self, product_id: object) -> bool:
        return isinstance(product_id, int | np.integer) and int(product_id) in self._members

    def ids(self) -> np.ndarray:
        """The stored ids (int64), in storage order."""
        with self._lock:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, matrix) of everything stored, rows aligned."""
        with self._lock:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            matrix = self._index.index.reconstruct_n(0, self._index.ntotal) if len(ids) else np.empty((0, self.dim))
            return ids, np.asarray(matrix, dtype=np.float32).reshape(-1, self.dim)

    def build(self, ids: Sequence[int] | np.ndarray, matrix: np.ndarray, normalized: bool = False) -> None:
        """Replace the whole content with these ids and vectors (`normalized`: rows are unit length already)."""
        ids_array = _ids_array(ids)
        if len(np.unique(ids_array)) != len(ids_array):
            raise ValueError("ids must be unique")
        vectors = _normalized(matrix, self.dim, normalized) if len(ids_array) else np.empty((0, self.dim), np.float32)
        if len(vectors) != len(ids_array):
            raise ValueError(f"{len(ids_array)} ids for {len(vectors)} vectors")
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if len(ids_array):
            index.add_with_ids(vectors, ids_array)
        with self._lock:
            self._index = index
            self._members = {int(i) for i in ids_array}

    def upsert(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Add products, replacing the vectors of ids already present (last one wins on repeats)."""
        ids_array = _ids_array(ids)
        if not len(ids_array):
            return
        matrix = _normalized(vectors, self.dim)
        if len(matrix) != len(ids_array):
            raise ValueError(f"{len(ids_array)} ids for {len(matrix)} vectors")
        # Keep only the last occurrence of a repeated id.
        _, last_from_end = np.unique(ids_array[::-1], return_index=True)
        keep = np.sort(len(ids_array) - 1 - last_from_end)
        ids_array, matrix = ids_array[keep], np.ascontiguousarray(matrix[keep])
        with self._lock:
            self._index.remove_ids(ids_array)
            self._index.add_with_ids(matrix, ids_array)
            self._members.update(int(i) for i in ids_array)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Drop these ids (unknown ones are ignored); returns how many were removed."""
        ids_array = _ids_array(ids)
        if not len(ids_array):
            return 0
        with self._lock:
            self._members.difference_update(int(i) for i in ids_array)
            return int(self._index.remove_ids(ids_array))

    def search(self, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest products to one query vector as (id, cosine), best first."""
        query = _normalized(query_vec.reshape(1, -1), self.dim)
        if _SERVING["single_threaded"]:
            faiss.omp_set_num_threads(1)  # OpenMP's thread count is per calling thread: set it here
        with self._lock:
            count = min(k, self._index.ntotal)
            if count < 1:
                return []
            scores, ids = self._index.search(query, count)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def scores(self, query_vec: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Exact cosine of one query vector with each stored id (ids not stored are left out)."""
        query = _normalized(query_vec.reshape(1, -1), self.dim)[0]
        with self._lock:
            present = [int(i) for i in ids if int(i) in self._members]
            if not present:
                return {}
            # One batched gather: per-id reconstruct() cost 2.3 ms for 300 candidates, this 0.1 ms.
            matrix = self._index.reconstruct_batch(np.asarray(present, dtype=np.int64))
        return dict(zip(present, (matrix @ query).tolist(), strict=True))

    def lookup(self, ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """(present ids, their unit vectors as rows); ids not stored are left out."""
        with self._lock:
            present = [int(i) for i in dict.fromkeys(ids) if int(i) in self._members]
            if not present:
                return [], np.empty((0, self.dim), dtype=np.float32)
            matrix = self._index.reconstruct_batch(np.asarray(present, dtype=np.int64))
        return present, np.asarray(matrix, dtype=np.float32)

    def save(self, directory: str | Path) -> None:
        """Write embeddings.npy and ids.npy into directory (each replaced atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ids, matrix = self.vectors()
        for name, array in ((EMBEDDINGS_FILE, matrix), (IDS_FILE, ids)):
            tmp = directory / f".{name}.tmp"
            with open(tmp, "wb") as handle:
                np.save(handle, array)
            os.replace(tmp, directory / name)

    @classmethod
    def load(cls, directory: str | Path) -> VectorIndex:
        """An index from the files save() wrote, or from the merged file when products were merged since."""
        directory = Path(directory)
        if (directory / MERGED_FILE).is_file():
            with np.load(directory / MERGED_FILE, allow_pickle=False) as data:
                matrix, ids = data["embeddings"], data["ids"]
        else:
            matrix = np.load(directory / EMBEDDINGS_FILE, allow_pickle=False)
            ids = np.load(directory / IDS_FILE, allow_pickle=False)
        if matrix.ndim != 2:
            raise ValueError(f"{directory}: the stored embeddings are not a matrix")
        index = cls(int(matrix.shape[1]))
        index.build(ids, matrix, normalized=True)  # saved rows are unit length: load them bit for bit
        return index


@contextmanager
def _merge_lock(directory: Path) -> Iterator[None]:
    """One merge at a time per directory, across processes (two imports may embed at once)."""
    with open(directory / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def merge_saved(
    directory: str | Path, ids: Sequence[int] | np.ndarray, matrix: np.ndarray, removed: Sequence[int] = ()
) -> dict[str, int]:
    """Add or replace these products' vectors in a saved index and drop `removed`, atomically.

    Read, change and write happen under a lock, so concurrent merges all land; the result is
    written to a temporary file and renamed over vectors.npz, so a reader loads the index as
    it was before or after the merge, never half of it. Re-running a merge changes nothing.
    """
    directory = Path(directory)
    with _merge_lock(directory):
        index = VectorIndex.load(directory)
        before = len(index)
        removed_count = index.remove(removed)
        index.upsert(ids, matrix)
        stored_ids, stored = index.vectors()
        handle, tmp = tempfile.mkstemp(prefix=f".{MERGED_FILE}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, ids=stored_ids, embeddings=stored)
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; web workers may run as another user
            os.replace(tmp, directory / MERGED_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return {"stored": len(stored_ids), "added": len(stored_ids) - before + removed_count, "removed": removed_count}
