"""A position-based click model (PBM) fitted by expectation-maximisation on logged impressions.

PBM: a shopper clicks a result when they examine its position (probability theta_k, the
same for every query) and find it attractive (gamma_qd, per query and product):
P(click) = theta_k * gamma_qd. EM alternates the posterior of the hidden (examined,
attractive) pair for every unclicked impression with closed-form maxima (Chuklin, Markov
and de Rijke, "Click Models for Web Search", 2015, ch. 4; Wang et al., WSDM 2018).
theta is identified only up to a common factor and only where a product is seen at more
than one position (filters, sorting, ranking changes, A/B variants, exploration swaps); the
model reports propensities relative to position 1, which is what inverse-propensity
weighting needs, and whether the log identified them (Identification): where it did not,
EM returns what its start and prior say, and callers use a configured curve instead
(identified_or_curve).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

_EPS = 1e-6


MIN_VARIED_SHARE = 0.05  # identified only if at least this share of (query, product) pairs moved
MIN_EFFECTIVE = 30  # ... and every well-shown position has this many impressions of pairs that moved
# ... and a fit on half the impressions agrees within this (relative, ranks 1-10): with few
# impressions per (query, product), the per-pair attractiveness biases the fit, and the bias
# grows as the data shrinks, so the half-data fit moving away exposes it.
MAX_INSTABILITY = 0.10
STABLE_DEPTH = 10


@dataclass(frozen=True)
class Identification:
    """Whether the log can tell positions apart: theta_k is learned only from pairs shown at 2+ positions."""

    varied_share: float  # share of (query, product) pairs seen at two or more positions
    effective: tuple[int, ...]  # per position: impressions of pairs that were also seen elsewhere
    converged: bool  # EM stopped on its tolerance, not on the iteration cap
    identified: bool
    instability: float | None = None  # worst relative change of a half-data fit, ranks 1-STABLE_DEPTH

    def as_dict(self) -> dict:
        return {
            "identified": self.identified,
            "varied_share": round(self.varied_share, 4),
            "effective": list(self.effective),
            "converged": self.converged,
            "instability": None if self.instability is None else round(self.instability, 4),
        }


@dataclass(frozen=True)
class PositionBiasModel:
    """Fitted examination propensities per position and how the fit went."""

    theta: np.ndarray  # theta[k - 1]: examination probability at position k (last entry covers deeper ones)
    iterations: int
    log_likelihood: float
    impressions: int
    identification: Identification | None = None  # None: not fitted (uniform or a configured curve)
    source: str = "fitted"

    @property
    def max_position(self) -> int:
        return len(self.theta)

    def relative(self) -> np.ndarray:
        """Propensities divided by position 1's, so position 1 has propensity 1."""
        return self.theta / max(float(self.theta[0]), _EPS)

    def propensity(self, position: int) -> float:
        """Relative examination propensity of a 1-based position (deeper positions share the last value)."""
        index = min(max(position, 1), self.max_position) - 1
        return float(self.relative()[index])

    def as_dict(self) -> dict:
        """JSON-ready summary (relative propensities rounded) for job logs and metrics."""
        summary = {
            "source": self.source,
            "propensities": [round(float(p), 4) for p in self.relative()],
            "iterations": self.iterations,
            "log_likelihood": round(self.log_likelihood, 3),
            "impressions": self.impressions,
        }
        if self.identification is not None:
            summary["identification"] = self.identification.as_dict()
        return summary


def uniform_model(max_position: int) -> PositionBiasModel:
    """No position bias: every position is examined (the uncorrected baseline)."""
    return PositionBiasModel(
        theta=np.ones(max_position), iterations=0, log_likelihood=0.0, impressions=0, source="uniform"
    )


def curve_model(max_position: int, power: float = 1.0) -> PositionBiasModel:
    """The configured fallback curve (1/k)^power, for a log that cannot identify the propensities."""
    theta = 1.0 / np.arange(1, max_position + 1, dtype=np.float64) ** power
    return PositionBiasModel(theta=theta, iterations=0, log_likelihood=0.0, impressions=0, source=f"(1/k)^{power:g}")


def identified_or_curve(model: PositionBiasModel, power: float) -> PositionBiasModel:
    """The fitted model when the log identifies it, else the configured curve (its diagnosis kept)."""
    if model.identification is None or model.identification.identified:
        return model
    fallback = curve_model(model.max_position, power)
    return PositionBiasModel(
        fallback.theta, model.iterations, model.log_likelihood, model.impressions, model.identification, fallback.source
    )


def identification(
    pairs: np.ndarray, pos: np.ndarray, max_position: int, converged: bool, n_pos: np.ndarray
) -> Identification:
    """How many pairs moved between positions, and how much each position learned from them."""
    distinct = np.unique(np.stack([pairs, pos]), axis=1)[0]  # one entry per (pair, position) seen
    positions_per_pair = np.bincount(distinct)
    varied = positions_per_pair >= 2
    share = float(varied.mean()) if len(varied) else 0.0
    effective = np.bincount(pos[varied[pairs]], minlength=max_position)
    well_shown = n_pos >= MIN_EFFECTIVE
    enough = bool(np.all(effective[well_shown] >= MIN_EFFECTIVE)) if well_shown.any() else False
    return Identification(
        varied_share=share,
        effective=tuple(int(v) for v in effective),
        converged=converged,
        identified=converged and share >= MIN_VARIED_SHARE and enough,
    )


def decreasing(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The closest non-increasing sequence in weighted least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for value, weight in zip(values, np.maximum(weights, _EPS), strict=True):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean, total, length = blocks.pop()
            last = blocks[-1]
            last[0] = (last[0] * last[1] + mean * total) / (last[1] + total)
            last[1] += total
            last[2] += length
    return np.concatenate([np.full(length, mean) for mean, _, length in blocks])


def _log_likelihood(p_click: np.ndarray, clicks: np.ndarray) -> float:
    p = np.clip(p_click, _EPS, 1 - _EPS)
    return float(np.sum(np.where(clicks, np.log(p), np.log(1 - p))))


def fit_pbm(
    queries: Sequence[Hashable],
    products: Sequence[Hashable],
    positions: Sequence[int],
    clicks: Sequence[bool],
    max_position: int = 24,
    iterations: int = 1000,
    tolerance: float = 1e-9,
    prior: float = 0.1,
    monotone: bool = True,
    check_stability: bool = True,
) -> PositionBiasModel:
    """Fit theta and gamma by EM on impressions (one row per shown product); returns the thetas.

    Positions deeper than max_position share one theta. `prior` adds that many pseudo-
    observations at 0.5 to every estimate, so a position or pair seen a few times does not
    jump to 0 or 1 (where EM would stay stuck). `monotone` projects the fit onto curves that
    never rise with depth: where the log barely tells positions apart (little variation in
    where a product is shown), that assumption keeps the weights sane. `check_stability` refits
    on a seeded half of the impressions to judge identification (MAX_INSTABILITY).
    """
    if not (len(queries) == len(products) == len(positions) == len(clicks)):
        raise ValueError("queries, products, positions and clicks must have the same length")
    if max_position < 1:
        raise ValueError("max_position must be at least 1")
    click = np.asarray(clicks, dtype=bool)
    pos = np.clip(np.asarray(positions, dtype=np.int64), 1, max_position) - 1
    if len(click) == 0:
        return uniform_model(max_position)
    pair_index: dict[tuple[Hashable, Hashable], int] = {}
    pairs = np.fromiter(
        (pair_index.setdefault((q, d), len(pair_index)) for q, d in zip(queries, products, strict=True)),
        dtype=np.int64,
        count=len(click),
    )
    n_pos = np.bincount(pos, minlength=max_position).astype(float)
    n_pair = np.bincount(pairs, minlength=len(pair_index)).astype(float)
    theta = np.full(max_position, 0.5)
    gamma = np.full(len(pair_index), 0.5)
    previous = -np.inf
    done, converged = 0, False
    while done < iterations:
        done += 1
        t, g = theta[pos], gamma[pairs]
        unclicked = np.maximum(1 - t * g, _EPS)
        # Posteriors for an unclicked impression: examined but unattractive, or attractive but unseen.
        examined = np.where(click, 1.0, t * (1 - g) / unclicked)
        attractive = np.where(click, 1.0, (1 - t) * g / unclicked)
        theta = (np.bincount(pos, weights=examined, minlength=max_position) + 0.5 * prior) / (n_pos + prior)
        gamma = (np.bincount(pairs, weights=attractive, minlength=len(pair_index)) + 0.5 * prior) / (n_pair + prior)
        likelihood = _log_likelihood(theta[pos] * gamma[pairs], click)
        if abs(likelihood - previous) < tolerance * max(1.0, abs(likelihood)):
            converged = True
            break
        previous = likelihood
    if monotone:
        theta = decreasing(theta, n_pos)
    theta = np.clip(theta, _EPS, 1.0)
    diagnosis = identification(pairs, pos, max_position, converged, n_pos)
    if check_stability and diagnosis.identified:
        half = np.random.default_rng(0).random(len(click)) < 0.5
        refit = fit_pbm(
            pairs[half],
            np.zeros(int(half.sum())),
            pos[half] + 1,
            click[half],
            max_position,
            iterations,
            tolerance,
            prior,
            monotone,
            check_stability=False,
        )
        depth = min(STABLE_DEPTH, max_position)
        full = theta / max(float(theta[0]), _EPS)
        shown = n_pos[:depth] >= MIN_EFFECTIVE  # a rarely shown position is not what IPS leans on
        change = float(np.max(np.abs(refit.relative()[:depth] / full[:depth] - 1)[shown], initial=0.0))
        diagnosis = replace(diagnosis, instability=change, identified=change <= MAX_INSTABILITY)
    return PositionBiasModel(
        theta=theta,
        iterations=done,
        log_likelihood=_log_likelihood(theta[pos] * gamma[pairs], click),
        impressions=len(click),
        identification=diagnosis,
    )
