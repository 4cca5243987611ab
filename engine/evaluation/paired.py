"""A paired comparison of two rankers over the same queries: mean difference, bootstrap interval, decision.

Per-query NDCG@10 varies far more between queries (SD about 0.25) than between two versions
on one query, so two means compared as points decide on noise. Pairing by query and
resampling the queries (a percentile bootstrap with a fixed seed, so a build is
reproducible) gives an interval for the mean difference; the candidate passes when the
interval's lower end stays above minus the non-inferiority margin, which is set in advance
(configuration), never after looking at the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20_260_101
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedComparison:
    """Candidate against baseline on the same queries; `passed` is the non-inferiority decision."""

    candidate: float  # mean per-query score of the candidate
    baseline: float
    difference: float  # candidate - baseline
    low: float  # CONFIDENCE interval of the difference
    high: float
    queries: int
    margin: float
    passed: bool

    def as_dict(self) -> dict:
        """JSON-ready, rounded for the version's metrics."""
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """One line for logs and refusals: the difference with its interval, the queries and the margin."""
        return (
            f"{self.candidate:.4f} vs {self.baseline:.4f}: difference {self.difference:+.4f}, "
            f"{CONFIDENCE:.0%} interval [{self.low:+.4f}, {self.high:+.4f}] over {self.queries} queries, "
            f"margin {self.margin}"
        )


def paired_bootstrap(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float],
    margin: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedComparison:
    """Compare per-query scores (qid -> score) on the queries both have; passes if low >= -margin.

    With no shared query there is nothing to judge: the comparison fails.
    """
    if margin < 0:
        raise ValueError("the non-inferiority margin must be 0 or more")
    qids = sorted(set(candidate) & set(baseline))
    if not qids:
        return PairedComparison(0.0, 0.0, 0.0, -np.inf, np.inf, 0, margin, False)
    a = np.array([candidate[q] for q in qids], dtype=np.float64)
    b = np.array([baseline[q] for q in qids], dtype=np.float64)
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = (float(v) for v in np.quantile(means, [tail, 1 - tail]))
    return PairedComparison(
        candidate=float(a.mean()),
        baseline=float(b.mean()),
        difference=float(diff.mean()),
        low=low,
        high=high,
        queries=len(qids),
        margin=margin,
        passed=low >= -margin,
    )
