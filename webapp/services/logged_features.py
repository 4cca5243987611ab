"""Stage 2's features of each shown product as the shopper saw them: the context ranker's training data.

Each impression logs its product's CONTEXT_FEATURES row and exploration value, rounded to 5
places, as a JSON object. A search logs a page of them (24 rows of 13 numbers) before its
response leaves, so the JSON text is made here in one formatting step per row, from a template
whose keys are fixed, instead of a json.dumps per row (half the cost, measured): a float's
repr is the text json.dumps writes for it.
"""

from __future__ import annotations

import json

import numpy as np

from engine.ranking.context import CONTEXT_FEATURES
from engine.ranking.stage import ContextResult

LOGGED = (*CONTEXT_FEATURES, "explore")
_TEMPLATE = "{" + ",".join(f'"{name}":%r' for name in LOGGED) + "}"


class LoggedFeatures(dict):
    """One impression's features (a dict, as stored) that also knows its journal text."""

    __slots__ = ("_values",)

    def __init__(self, values: list[float]) -> None:
        super().__init__(zip(LOGGED, values, strict=True))
        self._values = tuple(values)

    def json_bytes(self) -> bytes:
        """The compact JSON of this dict, as json.dumps(self, separators=(",", ":")) writes it."""
        return (_TEMPLATE % self._values).encode()


def features_json(features: dict) -> bytes:
    """Compact JSON of an impression's features (LoggedFeatures: its own, faster text)."""
    if isinstance(features, LoggedFeatures):
        return features.json_bytes()
    return json.dumps(features, separators=(",", ":")).encode()


def logged_features(staged: ContextResult | None, shown: list[int]) -> list[LoggedFeatures | None]:
    """Per shown product id: its features as logged, or None when stage 2 did not feature it."""
    if staged is None:
        return [None] * len(shown)
    row_of = staged.row_of
    at = [row_of.get(pid) for pid in shown]
    known = [i for i in at if i is not None]
    if not known:
        return [None] * len(shown)
    # One rounding over the page's matrix (per-value round() was a tenth of a search's time).
    table = np.column_stack((staged.matrix[known].astype(np.float64), staged.explore_values[known]))
    if not np.isfinite(table).all():  # never expected; JSON has no NaN, and PostgreSQL refuses it
        table = np.nan_to_num(table, nan=0.0, posinf=0.0, neginf=0.0)
    rows = iter(np.round(table, 5).tolist())
    return [None if i is None else LoggedFeatures(next(rows)) for i in at]
