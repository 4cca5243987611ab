"""The vector index over product embeddings: exact inner-product search with faiss.

Flat (exact) search is the right choice up to a few hundred thousand products on one web
worker: no training, updates in place, and recall 1.0. Vectors are L2-normalised on the
way in, so inner product is cosine similarity.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

EMBEDDINGS_FILE = "embeddings.npy"
IDS_FILE = "ids.npy"


_SERVING = {"single_threaded": False}


def serve_single_threaded() -> None:
    """Search with one OpenMP thread from now on, in this process: right for a web worker that
    answers one query per request thread (measured here: 12 ms with 2 threads under load,
    0.26 ms with 1). Only serving processes call it; a training worker keeps torch's threads."""
    _SERVING["single_threaded"] = True


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
            matrix = np.vstack([self._index.reconstruct(i) for i in present])
        return dict(zip(present, (matrix @ query).tolist(), strict=True))

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
        """An index from the files save() wrote."""
        directory = Path(directory)
        matrix = np.load(directory / EMBEDDINGS_FILE, allow_pickle=False)
        ids = np.load(directory / IDS_FILE, allow_pickle=False)
        if matrix.ndim != 2:
            raise ValueError(f"{directory / EMBEDDINGS_FILE} is not a matrix")
        index = cls(int(matrix.shape[1]))
        index.build(ids, matrix, normalized=True)  # saved rows are unit length: load them bit for bit
        return index
