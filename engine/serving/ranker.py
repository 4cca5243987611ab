"""A linear ranker over retrieval and product features, fitted pairwise on graded labels.

It runs with numpy alone (the web process has no torch). Weights are fitted offline by
`fit_pairwise` from (query, candidates, gains) groups and stored as JSON with the model version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FEATURES = (
    "dense",
    "bm25",
    "rrf",
    "dense_rr",
    "lexical_rr",
    "in_both",
    "title_match",
    "rating",
    "popularity",
    "click",
    "purchase",
)


@dataclass
class LinearRanker:
    weights: dict[str, float] = field(default_factory=dict)

    def vector(self) -> np.ndarray:
        return np.array([self.weights.get(name, 0.0) for name in FEATURES], dtype=np.float32)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores for a (n, len(FEATURES)) feature matrix."""
        return features @ self.vector()

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"features": list(FEATURES), "weights": self.weights}, indent=2))

    @classmethod
    def load(cls, path: Path) -> LinearRanker:
        data = json.loads(path.read_text())
        return cls(weights={k: float(v) for k, v in data["weights"].items() if k in FEATURES})


def fit_pairwise(
    groups: list[tuple[np.ndarray, np.ndarray]], epochs: int = 300, lr: float = 0.5, l2: float = 1e-3, seed: int = 0
) -> LinearRanker:
    """RankNet-style logistic loss on every pair with different gains, full-batch gradient descent.

    groups: (features (n, d), gains (n,)) per query. Pairs are weighted by their gain gap so
    Exact-over-Irrelevant counts more than Substitute-over-Complement.
    """
    rng = np.random.default_rng(seed)
    diffs, weights = [], []
    for features, gains in groups:
        i, j = np.where(gains[:, None] > gains[None, :])
        if len(i) == 0:
            continue
        if len(i) > 2000:  # bound the pairs per query so large groups do not dominate
            keep = rng.choice(len(i), 2000, replace=False)
            i, j = i[keep], j[keep]
        diffs.append(features[i] - features[j])
        weights.append(gains[i] - gains[j])
    if not diffs:
        raise ValueError("no pairs with different gains to learn from")
    w = fit_pair_differences(np.concatenate(diffs), np.concatenate(weights), epochs=epochs, lr=lr, l2=l2)
    return LinearRanker(weights={name: float(v) for name, v in zip(FEATURES, w, strict=True)})


def fit_pair_differences(
    diffs: np.ndarray, pair_weights: np.ndarray, epochs: int = 300, lr: float = 0.5, l2: float = 1e-3
) -> np.ndarray:
    """Weights w minimising the weighted logistic loss of w . (x_better - x_worse) over the pairs."""
    x = diffs.astype(np.float64)
    pair_weight = pair_weights.astype(np.float64)
    pair_weight = pair_weight / pair_weight.sum()
    w = np.zeros(x.shape[1])
    for _ in range(epochs):
        margin = x @ w
        # d/dw of sum_p weight_p * log(1 + exp(-margin_p)), numerically stable via tanh-free sigmoid.
        grad = -(pair_weight * (1.0 / (1.0 + np.exp(np.clip(margin, -30, 30))))) @ x + l2 * w
        w -= lr * grad
    return w
