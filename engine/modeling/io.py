"""A model version on disk: one directory, written completely, then renamed into place.

Layout: config.json (ModelConfig + the transformer's config), model.safetensors (encoder
and heads), the tokenizer files, metrics.json, and whatever `extra` writes (the ONNX
query encoder). Readers never see a half-written version: everything goes into a hidden
sibling directory first, and one rename publishes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerBase

from engine.modeling.config import ModelConfig
from engine.modeling.encoder import SentenceEncoder, load_tokenizer
from engine.modeling.heads import MultiTaskModel

FORMAT = "kairos-model/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json", METRICS_FILE)


@dataclass
class LoadedVersion:
    """A model version read back from disk."""

    path: Path
    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    config: ModelConfig
    metrics: dict[str, Any] = field(default_factory=dict)


def _write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and os.replace, so readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_complete(path: str | Path) -> bool:
    """Whether a directory holds every file a published version must have."""
    path = Path(path)
    return path.is_dir() and all((path / name).is_file() for name in REQUIRED_FILES)


def save_model_version(
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    config: ModelConfig,
    target: str | Path,
    metrics: dict[str, Any] | None = None,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a version directory atomically; `extra(tmp_dir)` may add files before publishing.

    The target must not exist (versions are immutable). On any failure the partial
    directory is removed and the error re-raised.
    """
    target = Path(target)
    if target.exists():
        raise FileExistsError(f"model version {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        transformer_config = json.loads(model.encoder.transformer.config.to_json_string(use_diff=False))
        _write_json(
            tmp / CONFIG_FILE,
            {
                "format": FORMAT,
                "model": config.to_dict(),
                "transformer": transformer_config,
                "dim": model.encoder.dim,
            },
        )
        save_model(model, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "kairos": FORMAT})
        tokenizer.save_pretrained(str(tmp))
        _write_json(tmp / METRICS_FILE, metrics or {})
        if extra is not None:
            extra(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; web workers may run as another user
        os.rename(tmp, target)  # fails if someone published the same version meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _rebuild_encoder(transformer_config: dict[str, Any]) -> SentenceEncoder:
    settings = dict(transformer_config)
    model_type = settings.pop("model_type")
    hf_config = AutoConfig.for_model(model_type, **settings)
    return SentenceEncoder(AutoModel.from_config(hf_config))


def load_model_version(path: str | Path, device: torch.device | str = "cpu") -> LoadedVersion:
    """Read a version written by save_model_version, in eval mode on `device`."""
    path = Path(path)
    if not is_complete(path):
        raise FileNotFoundError(f"{path} is not a complete model version (needs {', '.join(REQUIRED_FILES)})")
    stored = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    if stored.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown model format {stored.get('format')!r}")
    config = ModelConfig.from_dict(stored["model"])
    model = MultiTaskModel(_rebuild_encoder(stored["transformer"]), config.heads)
    load_model(model, str(path / WEIGHTS_FILE), strict=True, device=str(device))
    model.to(device).eval()
    return LoadedVersion(
        path=path, model=model, tokenizer=load_tokenizer(path), config=config, metrics=read_metrics(path)
    )


def read_metrics(path: str | Path) -> dict[str, Any]:
    """The metrics.json of a version directory ({} when absent)."""
    file = Path(path) / METRICS_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Replace a version's metrics.json atomically (evaluation may finish after publishing)."""
    _write_json(Path(path) / METRICS_FILE, metrics)
