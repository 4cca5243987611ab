"""A model version's serving artifacts, loaded and checked as one unit.

A version directory is complete only when its manifest.json exists: the worker writes
every other file first and the manifest last, so a half-written directory never loads.
The manifest carries the sha256 of every file written before it, and loading verifies
them: an artifact changed after the build (a copy gone wrong, a bit flipped, a file swapped
for a readable but wrong one) refuses the version wherever it is loaded. A manifest without
checksums (written before they existed) loads as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.serving.heads import PairHeads, load_heads
from engine.serving.heads_onnx import OnnxPairHeads
from engine.serving.query_encoder import OnnxQueryEncoder
from engine.serving.ranker import LinearRanker
from engine.serving.vectors import VectorIndex

MANIFEST = "manifest.json"
CHECKSUMS = "checksums"  # the manifest's key: {relative path: sha256 hex}
RANKER = "ranker.json"
RETRIEVAL_MODES = ("lexical", "dense", "rrf", "hybrid")  # rrf: hybrid without the learned ranker


class BundleError(RuntimeError):
    """The artifacts cannot be served (missing, corrupt or inconsistent)."""


PRODUCT_MAX_LENGTH = 128  # product text is longer than a query; the worker embeds with the same limit


@dataclass
class ServingBundle:
    version_id: int
    retrieval_mode: str
    directory: Path
    encoder: OnnxQueryEncoder
    vectors: VectorIndex
    ranker: LinearRanker | None
    heads: PairHeads | OnnxPairHeads | None = None  # the trained click/purchase heads, if the version has them
    _product_encoder: OnnxQueryEncoder | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"v{self.version_id}"

    def ranker_label(self, mode: str | None = None) -> str:
        """What a search with words reports as its ranker ("dense:v1", "rrf:v1", "ranker:v1"): the
        one name the API, Explain and the admin show. Hybrid without a kept ranker is RRF."""
        mode = mode or self.retrieval_mode
        if mode == "dense":
            return f"dense:{self.name}"
        return f"{'ranker' if mode == 'hybrid' and self.ranker is not None else 'rrf'}:{self.name}"

    def product_encoder(self) -> OnnxQueryEncoder:
        """The fp32 encoder with product-length inputs, for products added after the build (lazy)."""
        if self._product_encoder is None:
            self._product_encoder = OnnxQueryEncoder(
                self.directory, variant="fp32", threads=1, cache_size=0, max_length=PRODUCT_MAX_LENGTH
            )
        return self._product_encoder


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def artifact_checksums(directory: Path) -> dict[str, str]:
    """The sha256 of every file under the directory but the manifest, by relative path."""
    return {
        path.relative_to(directory).as_posix(): _sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in (MANIFEST, MANIFEST + ".tmp")
    }


def verify_checksums(directory: Path, manifest: dict) -> None:
    """BundleError unless every file the manifest lists is there with the content it was built with."""
    for name, expected in (manifest.get(CHECKSUMS) or {}).items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"artifact {name} is missing (listed in {MANIFEST})")
        if _sha256(path) != expected:
            raise BundleError(f"artifact {name} does not match the checksum written at build: it changed since")


def write_manifest(directory: Path, retrieval_mode: str, extra: dict | None = None) -> None:
    """Mark a version directory complete (call after every other artifact is written and synced),
    recording every artifact's checksum."""
    data = {"retrieval_mode": retrieval_mode, **(extra or {}), CHECKSUMS: artifact_checksums(directory)}
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(directory / MANIFEST)


def load_bundle(
    directory: str | Path,
    version_id: int,
    variant: str = "int8",
    threads: int = 1,
    cache_size: int = 2048,
    retrieval_mode: str | None = None,
) -> ServingBundle:
    """Load and sanity-check a version directory; raises BundleError with the reason."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{directory} has no {MANIFEST}: the version is incomplete or missing")
    try:
        manifest = json.loads(manifest_path.read_text())
        verify_checksums(directory, manifest)
        mode = retrieval_mode or manifest.get("retrieval_mode", "hybrid")
        if mode not in RETRIEVAL_MODES:
            raise BundleError(f"unknown retrieval mode {mode!r}")
        variant = manifest.get("serve_variant", variant)
        encoder = OnnxQueryEncoder(directory, variant=variant, threads=threads, cache_size=cache_size)
        vectors = VectorIndex.load(directory)
        probe = encoder.encode(["probe"])
        if len(vectors) == 0:
            raise BundleError("the version has no product embeddings")
        if probe.shape[1] != vectors.dim:
            raise BundleError(f"encoder dim {probe.shape[1]} != embedding dim {vectors.dim}")
        ranker_path = directory / RANKER
        ranker = LinearRanker.load(ranker_path) if ranker_path.is_file() else None
        heads = load_heads(directory)  # optional: versions built before heads.npz existed have none
        if heads is not None and heads.dim != vectors.dim:
            raise BundleError(f"heads read {heads.dim}-dim vectors, the embeddings have {vectors.dim}")
    except BundleError:
        raise
    except Exception as exc:  # any unreadable artifact means "do not serve this version"
        raise BundleError(f"cannot load {directory}: {type(exc).__name__}: {exc}") from exc
    return ServingBundle(
        version_id=version_id,
        retrieval_mode=mode,
        directory=directory,
        encoder=encoder,
        vectors=vectors,
        ranker=ranker,
        heads=heads,
    )
