"""The demo queries' one fixed train/test split: tune on train, report on test.

Run `python -m engine.evaluation.split` to (re)write data/esci-us-sample/split.json; the
split depends only on the query texts and the seed, never on file order or a random state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.evaluation.judgments import DEMO_DIR, DEMO_JUDGMENTS, EvaluationDataError, read_esci_queries

DEMO_SPLIT = DEMO_DIR / "split.json"
SPLIT_SEED = "kairos-esci-us-split-1"
SPLIT_NOTE = (
    "Made by `python -m engine.evaluation.split` from esci_us_judgments.json: the 150 query texts are "
    "ordered by sha256(seed + newline + text), the first half is train, the rest test; each list keeps the "
    "judgments file's order. Tune on train, report on test."
)
SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    test: tuple[str, ...]

    def texts(self, name: str) -> set[str]:
        """The query texts of 'train', 'test' or 'all'."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        if name == "all":
            return set(self.train) | set(self.test)
        return set(getattr(self, name))


def _key(text: str, seed: str) -> str:
    return hashlib.sha256(f"{seed}\n{text}".encode()).hexdigest()


def make_split(texts: Sequence[str], seed: str = SPLIT_SEED) -> Split:
    """Split query texts in half by seeded hash (train gets the smaller half when the count is odd)."""
    unique = list(dict.fromkeys(texts))
    ordered = sorted(unique, key=lambda t: _key(t, seed))
    train = set(ordered[: len(ordered) // 2])
    return Split(train=tuple(t for t in unique if t in train), test=tuple(t for t in unique if t not in train))


def demo_split() -> Split:
    """The split computed from the demo judgments file."""
    return make_split([q.text for q in read_esci_queries(DEMO_JUDGMENTS)])


def write_split(split: Split, path: str | Path = DEMO_SPLIT, seed: str = SPLIT_SEED) -> None:
    """Write a split as JSON with the note of how it was made."""
    body = {"note": SPLIT_NOTE, "seed": seed, "train": list(split.train), "test": list(split.test)}
    Path(path).write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_split(path: str | Path = DEMO_SPLIT) -> Split:
    """Read a split file written by write_split."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvaluationDataError(f"{path}: no such file (write it with `python -m engine.evaluation.split`)") from None
    except json.JSONDecodeError as exc:
        raise EvaluationDataError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    lists = [data.get(name) if isinstance(data, dict) else None for name in ("train", "test")]
    if not all(isinstance(v, list) and all(isinstance(t, str) for t in v) for v in lists):
        raise EvaluationDataError(f"{path}: expected 'train' and 'test' lists of query texts")
    return Split(train=tuple(lists[0]), test=tuple(lists[1]))


if __name__ == "__main__":
    split = demo_split()
    write_split(split)
    print(f"wrote {DEMO_SPLIT}: {len(split.train)} train, {len(split.test)} test")
