"""Decayed counts (engine.ranking.decay): the arithmetic against known values and the closed form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ranking.decay import (
    DecayedCount,
    HalfLives,
    TimestampError,
    TimestampPolicy,
    checked_time,
    decay,
    merged,
    rate,
    trend,
)

LIVES = HalfLives(short=3600.0, long=86400.0)
T0 = 1_700_000_000.0


def closed_form(events: list[tuple[float, float]], now: float, half_life: float) -> float:
    """sum w * 2^(-(now - t) / h): what a decayed count must equal, however it was accumulated."""
    return sum(w * 2.0 ** (-(now - t) / half_life) for w, t in events)


def test_one_half_life_halves_and_two_quarter():
    assert decay(8.0, 3600.0, 3600.0) == pytest.approx(4.0)
    assert decay(8.0, 7200.0, 3600.0) == pytest.approx(2.0)
    assert decay(8.0, 0.0, 3600.0) == 8.0


def test_decay_never_grows_backwards_in_time():
    assert decay(8.0, -3600.0, 3600.0) == 8.0


def test_merged_in_order_and_late():
    # In order: the old value decays to the new stamp, then the weight lands in full.
    assert merged(4.0, T0, 1.0, T0 + 3600, 3600.0) == (pytest.approx(3.0), T0 + 3600)
    # A late arrival one half-life before the stamp counts half, and the stamp stays.
    assert merged(4.0, T0, 1.0, T0 - 3600, 3600.0) == (pytest.approx(4.5), T0)


def test_decayed_count_reads_both_horizons():
    count = DecayedCount().add(1.0, T0, LIVES)
    short, long = count.at(T0 + 3600, LIVES)
    assert short == pytest.approx(0.5)
    assert long == pytest.approx(2.0 ** (-3600 / 86400))
    short, long = count.at(T0 + 86400, LIVES)
    assert short == pytest.approx(2.0**-24)
    assert long == pytest.approx(0.5)


events_strategy = st.lists(
    st.tuples(
        st.floats(min_value=0.1, max_value=5.0),  # weight
        st.floats(min_value=0.0, max_value=7 * 86400.0),  # seconds after T0
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None, database=None)
@given(events=events_strategy, order=st.randoms(use_true_random=False), later=st.floats(0.0, 86400.0))
def test_any_arrival_order_equals_the_closed_form(events, order, later):
    timed = [(w, T0 + dt) for w, dt in events]
    shuffled = list(timed)
    order.shuffle(shuffled)
    count = DecayedCount()
    for weight, at in shuffled:
        count = count.add(weight, at, LIVES)
    now = max(t for _, t in timed) + later
    short, long = count.at(now, LIVES)
    assert count.stamp == max(t for _, t in timed)
    assert short == pytest.approx(closed_form(timed, now, LIVES.short), rel=1e-9, abs=1e-12)
    assert long == pytest.approx(closed_form(timed, now, LIVES.long), rel=1e-9, abs=1e-12)


def test_a_steady_stream_settles_at_r_h_over_ln2():
    r = 0.5  # events per second
    count = DecayedCount()
    at = T0
    for _ in range(int(20 * LIVES.short * r)):  # twenty short half-lives of traffic
        at += 1 / r
        count = count.add(1.0, at, LIVES)
    short, _ = count.at(at, LIVES)
    assert short == pytest.approx(r * LIVES.short / math.log(2), rel=1e-3)
    assert rate(short, LIVES.short) == pytest.approx(r, rel=1e-3)


def test_trend_is_zero_for_nothing_and_for_a_steady_rate():
    assert trend(0.0, 0.0, LIVES) == 0.0
    r = 0.01
    steady_short, steady_long = r * LIVES.short / math.log(2), r * LIVES.long / math.log(2)
    assert trend(steady_short, steady_long, LIVES) == pytest.approx(0.0, abs=1e-12)


def test_trend_rises_with_a_burst_and_falls_when_it_cools():
    burst = DecayedCount()
    for k in range(30):
        burst = burst.add(1.0, T0 + k, LIVES)
    assert trend(*burst.at(T0 + 60, LIVES), LIVES) > 1.0
    # Two days later the short horizon has forgotten it, the long one still remembers: cooling.
    assert trend(*burst.at(T0 + 2 * 86400, LIVES), LIVES) < 0
    # One stray event is not a surge: the prior keeps it modest.
    stray = DecayedCount().add(1.0, T0, LIVES)
    assert 0 < trend(*stray.at(T0, LIVES), LIVES) < trend(*burst.at(T0 + 60, LIVES), LIVES)


def test_half_lives_must_be_ordered():
    with pytest.raises(ValueError):
        HalfLives(short=86400.0, long=3600.0)
    with pytest.raises(ValueError):
        HalfLives(short=0.0, long=3600.0)


POLICY = TimestampPolicy(max_future_seconds=300.0, max_age_seconds=7 * 86400.0)


def test_checked_time_accepts_absent_and_past_times():
    assert checked_time(None, T0, POLICY) == T0
    assert checked_time(T0 - 3600, T0, POLICY) == T0 - 3600
    assert checked_time(T0 - 7 * 86400, T0, POLICY) == T0 - 7 * 86400


def test_checked_time_clamps_small_clock_skew_to_now():
    assert checked_time(T0 + 299, T0, POLICY) == T0
    assert checked_time(T0 + 300, T0, POLICY) == T0


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (T0 + 301, "in the future"),
        (T0 + 86400 * 365, "in the future"),
        (T0 - 7 * 86400 - 1, "older than 7 days"),
        (0.0, "older than"),
        (math.inf, "not a finite number"),
        (-math.inf, "not a finite number"),
        (math.nan, "not a finite number"),
    ],
)
def test_checked_time_refuses_with_a_reason(at, reason):
    with pytest.raises(TimestampError, match=reason):
        checked_time(at, T0, POLICY)
