"""Synthetic shoppers for A/A and A/B experiments (the bench and the tests).

Each visitor makes 1 + Poisson(mean_searches - 1) searches (exposure happens at the first
search, so nobody has zero) and has their own click propensity drawn from a Beta
distribution: some shoppers click a lot and some never, so clicks within a visitor are
correlated and the visitor-level variance is larger than a per-search binomial would say.
That is exactly what a test that counted searches as independent would get wrong.
A lift multiplies the propensity of every treated visitor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import betainc

from engine.experiments.metrics import VisitorData


@dataclass(frozen=True)
class ShopperModel:
    """Parameters of the synthetic shoppers; the defaults resemble a small shop's search logs."""

    mean_searches: float = 3.0
    click_propensity: float = 0.30  # mean chance that a search gets a click
    propensity_concentration: float = 2.0  # Beta(a, b) with a + b = this: small means very unequal shoppers
    extra_clicks: float = 0.25  # Poisson mean of further clicks on a clicked search
    click_position_p: float = 0.35  # geometric distribution of the clicked result position
    cart_rate: float = 0.20  # add-to-cart per click
    purchase_rate: float = 0.30  # purchase per add-to-cart
    mean_price: float = 30.0
    price_shape: float = 2.0  # gamma shape of a purchase's value
    zero_result_rate: float = 0.05
    mean_latency_ms: float = 40.0
    latency_shape: float = 4.0


def simulate_clicks(
    n: int, rng: np.random.Generator, model: ShopperModel = ShopperModel(), lift: float | NDArray = 0.0
) -> tuple[NDArray, NDArray, NDArray]:
    """(searches, clicked searches, clicks) per visitor; lift may be per visitor (0 for control)."""
    searches = 1 + rng.poisson(model.mean_searches - 1, n)
    k, mu = model.propensity_concentration, model.click_propensity
    propensity = np.minimum(rng.beta(mu * k, (1 - mu) * k, n) * (1 + np.asarray(lift, dtype=np.float64)), 1.0)
    clicked = rng.binomial(searches, propensity)
    clicks = clicked + rng.poisson(model.extra_clicks * clicked)
    return searches, clicked, clicks


def simulate_visitors(
    n: int, rng: np.random.Generator, model: ShopperModel = ShopperModel(), lift: float = 0.0
) -> VisitorData:
    """Full per-visitor data for one variant of n visitors."""
    searches, clicked, clicks = simulate_clicks(n, rng, model, lift)
    owner = np.repeat(np.arange(n), clicks)
    positions = rng.geometric(model.click_position_p, owner.size)
    rr_sum = np.bincount(owner, weights=1.0 / positions, minlength=n)
    carts = rng.binomial(clicks, model.cart_rate)
    purchases = rng.binomial(carts, model.purchase_rate)
    # A sum of k gamma(shape) prices is gamma(k * shape): no per-purchase draws needed.
    revenue = rng.gamma(np.maximum(purchases * model.price_shape, 1e-12), model.mean_price / model.price_shape)
    revenue = np.where(purchases > 0, revenue, 0.0)
    latency = rng.gamma(searches * model.latency_shape, model.mean_latency_ms / model.latency_shape)
    return VisitorData.from_columns(
        {
            "searches": searches,
            "clicks": clicks,
            "clicked_searches": clicked,
            "ranked_clicks": clicks,
            "reciprocal_rank_sum": rr_sum,
            "add_to_carts": carts,
            "purchases": purchases,
            "revenue": np.round(revenue, 2),
            "zero_result_searches": rng.binomial(searches, model.zero_result_rate),
            "latency_ms_sum": latency,
        }
    )


@dataclass(frozen=True)
class SimulatedExperiment:
    """Visitors split at random by the shares; each arrives on a day in [0, days)."""

    arms: list[VisitorData]
    arrival_day: list[NDArray[np.int64]]
    days: int


def simulate_experiment(
    n_visitors: int,
    rng: np.random.Generator,
    shares: tuple[float, ...] = (0.5, 0.5),
    lifts: tuple[float, ...] | None = None,
    days: int = 14,
    model: ShopperModel = ShopperModel(),
) -> SimulatedExperiment:
    """An experiment whose arms get multinomial visitor counts; arm i has lift lifts[i] (default none)."""
    lifts = lifts or (0.0,) * len(shares)
    if len(lifts) != len(shares):
        raise ValueError("one lift per arm")
    p = np.asarray(shares, dtype=np.float64)
    counts = rng.multinomial(n_visitors, p / p.sum())
    arms = [simulate_visitors(int(c), rng, model, lift) for c, lift in zip(counts, lifts, strict=True)]
    arrival = [rng.integers(0, days, int(c)) for c in counts]
    return SimulatedExperiment(arms, arrival, days)


def expected_click_through_rate(model: ShopperModel = ShopperModel(), lift: float = 0.0) -> float:
    """The population clicks per search that simulate_clicks draws from (exact, with the cap at 1)."""
    a = model.click_propensity * model.propensity_concentration
    b = (1 - model.click_propensity) * model.propensity_concentration
    c = 1 + lift
    # E[min(c X, 1)] for X ~ Beta(a, b): c E[X; X < 1/c] + P(X >= 1/c), and E[X; X < t] = mean * I_t(a + 1, b).
    capped = c * model.click_propensity * betainc(a + 1, b, min(1 / c, 1)) + (1 - betainc(a, b, min(1 / c, 1)))
    return float(capped * (1 + model.extra_clicks))
