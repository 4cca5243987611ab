"""Exponentially time-decayed counts: the arithmetic behind trending and recency signals.

A count with half-life h that received weights w_i at times t_i is, at time T,
sum_i w_i * 2^(-(T - t_i) / h). It is stored as (value at stamp, stamp), so adding an
event or reading "now" is O(1), in any order of arrival: an event older than the stamp is
decayed to the stamp before it is added. For a steady stream of r events per second the
value settles at r * h / ln 2, which is how a value turns back into a rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LN2 = math.log(2.0)


@dataclass(frozen=True)
class HalfLives:
    """The two horizons every signal is kept at: recent (trending) and longer-term (baseline)."""

    short: float = 3600.0
    long: float = 86400.0

    def __post_init__(self) -> None:
        if not 0 < self.short < self.long:
            raise ValueError("half-lives must satisfy 0 < short < long (seconds)")


def decay(value: float, elapsed: float, half_life: float) -> float:
    """value after `elapsed` seconds (never grows: a negative elapsed leaves it as is)."""
    return value * 2.0 ** (-max(elapsed, 0.0) / half_life)


def merged(value: float, stamp: float, weight: float, at: float, half_life: float) -> tuple[float, float]:
    """(value, stamp) after adding `weight` at time `at` to a count last stamped `stamp`."""
    if at >= stamp:
        return decay(value, at - stamp, half_life) + weight, at
    return value + decay(weight, stamp - at, half_life), stamp  # a late arrival: decay it, keep the stamp


def rate(value: float, half_life: float) -> float:
    """Events per second that a decayed value stands for (the steady-state inverse)."""
    return value * LN2 / half_life


@dataclass(frozen=True)
class DecayedCount:
    """One signal of one product at both half-lives, as stored: values at `stamp` (epoch seconds)."""

    short: float = 0.0
    long: float = 0.0
    stamp: float = 0.0

    def add(self, weight: float, at: float, half_lives: HalfLives) -> DecayedCount:
        short, stamp = merged(self.short, self.stamp, weight, at, half_lives.short)
        long, _ = merged(self.long, self.stamp, weight, at, half_lives.long)
        return DecayedCount(short, long, stamp)

    def at(self, now: float, half_lives: HalfLives) -> tuple[float, float]:
        """(short, long) values decayed to `now`."""
        elapsed = now - self.stamp
        return decay(self.short, elapsed, half_lives.short), decay(self.long, elapsed, half_lives.long)


def trend(short: float, long: float, half_lives: HalfLives, prior_events: float = 1.0) -> float:
    """log of the recent rate over the longer-term rate, smoothed by `prior_events` per long half-life.

    0 for a product doing what it always does (or nothing), > 0 when it is picking up, < 0 when it
    cools down. The prior keeps one stray event from looking like a surge.
    """
    prior = rate(prior_events, half_lives.long)
    return math.log((rate(short, half_lives.short) + prior) / (rate(long, half_lives.long) + prior))


@dataclass(frozen=True)
class TimestampPolicy:
    """Which event times are believed: clocks drift a little, replays and forgeries do not count."""

    max_future_seconds: float = 300.0  # within this, a future stamp is clamped to now (clock skew)
    max_age_seconds: float = 7 * 86400.0  # older events would barely count and mostly signal a replay


class TimestampError(ValueError):
    """An event time outside what the policy accepts (the message is the reason)."""


def checked_time(at: float | None, now: float, policy: TimestampPolicy) -> float:
    """The time to count an event at: `now` when absent, clamped within skew, else TimestampError."""
    if at is None:
        return now
    if not math.isfinite(at):
        raise TimestampError("timestamp is not a finite number")
    if at > now + policy.max_future_seconds:
        raise TimestampError(f"timestamp is {at - now:.0f} s in the future (at most {policy.max_future_seconds:.0f})")
    if at < now - policy.max_age_seconds:
        raise TimestampError(f"timestamp is older than {policy.max_age_seconds / 86400:g} days")
    return min(at, now)
