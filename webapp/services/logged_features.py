"""Stage 2's features of each shown product as the shopper saw them: the context ranker's training data.

Each impression logs its product's CONTEXT_FEATURES row and exploration value, rounded to 5
places, as a JSON object. A search logs a page of them (24 rows of 13 numbers) before its
response leaves, so the JSON text is made here in one formatting step per row, from a template
whose keys are fixed, instead of a json.dumps per row (half the cost, measured): a float's
repr is the text json.dumps writes for it.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from engine.ranking.context import CONTEXT_FEATURES
from engine.ranking.stage import ContextResult

LOGGED = (*CONTEXT_FEATURES, "explore")
_TEMPLATE = "{" + ",".join(f'"{name}":%r' for name in LOGGED) + "}"

log = logging.getLogger(__name__)


class LoggedFeatures(dict):
    """One impression's features (a dict, as stored) that also knows its journal text; read-only."""

    __slots__ = ("_values",)

    def __init__(self, values: list[float]) -> None:
        super().__init__(zip(LOGGED, values, strict=True))
        self._values = tuple(values)

    def _read_only(self, *args, **kwargs):
        raise TypeError("logged features are read-only: their journal text is made from the values given")

    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _read_only

    def json_bytes(self) -> bytes:
        """The compact JSON of this dict, as json.dumps(self, separators=(",", ":")) writes it."""
        text = _TEMPLATE % self._values
        if ":nan" in text or ":inf" in text or ":-inf" in text:  # a float's repr, not JSON: refuse it
            raise ValueError("logged features must be finite numbers")
        return text.encode()


def features_json(features: dict) -> bytes:
    """Compact JSON of an impression's features (LoggedFeatures: its own, faster text)."""
    if isinstance(features, LoggedFeatures):
        return features.json_bytes()
    return json.dumps(features, separators=(",", ":")).encode()


def _non_finite(table: np.ndarray, shown: list[int], at: list[int | None]) -> list[int]:
    featured = [pid for pid, i in zip(shown, at, strict=True) if i is not None]
    return [pid for pid, ok in zip(featured, np.isfinite(table).all(axis=1), strict=True) if not ok]


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
    if not np.isfinite(table).all():  # a bug upstream: JSON has no NaN, and PostgreSQL refuses it
        log.warning("stage 2 gave non-finite features for products %s; logged as 0", _non_finite(table, shown, at))
        table = np.nan_to_num(table, nan=0.0, posinf=0.0, neginf=0.0)
    rows = iter(np.round(table, 5).tolist())
    return [None if i is None else LoggedFeatures(next(rows)) for i in at]
