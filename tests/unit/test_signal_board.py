"""The signal board (engine.ranking.board) and the signals read from it, on an injected clock."""

from __future__ import annotations

import pytest

from engine.ranking.board import QUIET, SIGNALS, SignalBoard
from engine.ranking.context import CONTEXT_FEATURES, ContextSettings, context_matrix
from engine.ranking.decay import DecayedCount, HalfLives

T0 = 1_700_000_000.0
HOUR, DAY = 3600.0, 86400.0
SETTINGS = ContextSettings()
TRENDING = CONTEXT_FEATURES.index("trending")
AFFINITY = CONTEXT_FEATURES.index("query_affinity")
POPULAR = CONTEXT_FEATURES.index("popularity_recent")
CTR = CONTEXT_FEATURES.index("ctr")


def features(board: SignalBoard, ids: list[int], now: float, query: str = "") -> dict[int, list[float]]:
    rows, _ = context_matrix(ids, query, board, {}, now, SETTINGS)
    return {pid: row.tolist() for pid, row in zip(ids, rows, strict=True)}


def test_a_quiet_product_reads_as_quiet():
    board = SignalBoard()
    assert board.activity(7, T0) == QUIET
    assert board.query_activity("towel", T0) == {}
    row = features(board, [7], T0)[7]
    assert row[TRENDING] == 0.0 and row[AFFINITY] == 0.0 and row[POPULAR] == 0.0 and row[CTR] == 0.0


def test_add_counts_per_signal_at_both_horizons():
    board = SignalBoard()
    board.add(1, "purchase", T0)
    board.add(1, "purchase", T0 + HOUR)
    board.add(1, "click", T0)
    activity = board.activity(1, T0 + HOUR)
    assert activity.purchase[0] == pytest.approx(1.5)  # 0.5 (one half-life old) + 1
    assert activity.purchase[1] == pytest.approx(1 + 2 ** (-HOUR / DAY))
    assert activity.click[0] == pytest.approx(0.5)
    assert activity.add_to_cart == (0.0, 0.0)
    with pytest.raises(ValueError):
        board.add(1, "wishlist", T0)


def test_put_replaces_what_the_board_held_and_forget_drops_it():
    board = SignalBoard()
    board.add(1, "click", T0, weight=5.0)
    board.put(1, "click", DecayedCount(short=2.0, long=3.0, stamp=T0))
    assert board.activity(1, T0).click == (2.0, 3.0)
    board.put(1, "purchase", DecayedCount(1.0, 1.0, T0), query="towel")
    assert board.query_activity("towel", T0)[1].purchase == (1.0, 1.0)
    assert board.activity(1, T0).purchase == (0.0, 0.0)  # the per-query count is not the product's
    board.forget(1)
    assert board.activity(1, T0) == QUIET and len(board) == 0


def _as_array(activity) -> list[list[float]]:
    return [list(getattr(activity, name)) for name in SIGNALS]


def test_the_array_form_follows_add_put_and_forget():
    """activity_array gathers rows kept beside the counts: every change must rewrite them."""
    board, now = SignalBoard(), T0 + HOUR
    board.add(1, "click", T0, weight=5.0)
    board.add(2, "impression", T0, query="towel")
    board.put(1, "click", DecayedCount(short=2.0, long=3.0, stamp=T0))
    board.put(2, "purchase", DecayedCount(1.0, 4.0, T0), query="towel")
    board.put(3, "add_to_cart", DecayedCount(1.0, 1.0, T0 - DAY))
    ids = [1, 2, 3, 4]
    # Equal to the bit: the array form decays with the scalar form's expression.
    assert board.activity_array(ids, now).tolist() == [_as_array(board.activity(pid, now)) for pid in ids]
    after = board.query_activity("towel", now)
    assert board.activity_array(ids, now, "towel").tolist() == [_as_array(after.get(pid, QUIET)) for pid in ids]
    board.forget(1)
    assert board.activity_array([1], now).tolist() == [_as_array(QUIET)]
    assert board.activity_array([], now).shape == (0, len(SIGNALS), 2)


def test_a_burst_makes_trending_positive_then_it_decays_back():
    board = SignalBoard()
    board.add(2, "purchase", T0 - 10 * DAY)  # a product that sold once long ago, for contrast
    before = features(board, [1, 2], T0)[1][TRENDING]
    for k in range(20):
        board.add(1, "purchase", T0 + k * 10.0)
    hot = features(board, [1, 2], T0 + 300)
    later = features(board, [1], T0 + 6 * HOUR)[1][TRENDING]
    much_later = features(board, [1], T0 + 60 * DAY)[1][TRENDING]
    assert before == 0.0
    assert hot[1][TRENDING] > 0.5 > hot[2][TRENDING]
    assert later < hot[1][TRENDING]
    assert abs(much_later) < 1e-3  # both horizons forgot it: back to "doing what it always does"
    assert -1.0 <= min(hot[1][TRENDING], later, much_later) and hot[1][TRENDING] <= 1.0


def test_popularity_recent_follows_the_short_horizon():
    board = SignalBoard()
    for k in range(10):
        board.add(1, "click", T0 + k)
    now_value = features(board, [1], T0 + 10)[1][POPULAR]
    assert now_value > 0
    assert features(board, [1], T0 + 10 + HOUR)[1][POPULAR] < now_value
    assert features(board, [1], T0 + 10 + 30 * DAY)[1][POPULAR] == pytest.approx(0.0, abs=1e-6)


def test_ctr_rises_with_engagement_per_impression():
    board = SignalBoard()
    for k in range(100):
        board.add(1, "impression", T0 + k)
        board.add(2, "impression", T0 + k)
        if k % 4 == 0:
            board.add(1, "click", T0 + k)
    rows = features(board, [1, 2], T0 + 100)
    assert rows[1][CTR] > 0 > rows[2][CTR]  # shown alike, only one was clicked


def test_query_affinity_counts_only_for_that_query():
    board = SignalBoard()
    for k in range(5):
        board.add(1, "purchase", T0 + k, query="red towel")
    board.add(2, "click", T0, query="mug")
    towel = features(board, [1, 2], T0 + 60, query="red towel")
    mug = features(board, [1, 2], T0 + 60, query="mug")
    other = features(board, [1, 2], T0 + 60, query="blue towel")
    assert towel[1][AFFINITY] > 0 and towel[2][AFFINITY] == 0
    assert mug[1][AFFINITY] == 0 and mug[2][AFFINITY] > 0
    assert other[1][AFFINITY] == 0 and other[2][AFFINITY] == 0
    assert features(board, [1], T0 + 60)[1][AFFINITY] == 0  # no query, no affinity
    # Purchases after the query also count for the product overall.
    assert board.activity(1, T0 + 60).purchase[0] > 0


def test_query_affinity_fades_with_time():
    board = SignalBoard()
    board.add(1, "purchase", T0, query="towel")
    fresh = features(board, [1], T0, query="towel")[1][AFFINITY]
    assert features(board, [1], T0 + DAY, query="towel")[1][AFFINITY] < fresh
    assert features(board, [1], T0 + 200 * DAY, query="towel")[1][AFFINITY] == pytest.approx(0.0, abs=1e-6)


def test_the_board_answers_for_any_clock_with_its_half_lives():
    board = SignalBoard(HalfLives(short=60.0, long=600.0))
    board.add(1, "click", T0)
    assert board.activity(1, T0 + 60).click == (pytest.approx(0.5), pytest.approx(2**-0.1))


def test_the_array_form_holds_past_the_first_rows_and_never_reuses_a_forgotten_one():
    """The product matrix grows by copy; a forgotten product's row is zeroed and stays unused."""
    board, now = SignalBoard(), T0 + HOUR
    ids = list(range(1, 3001))  # past the first block of rows, twice
    for pid in ids:
        board.put(pid, "click", DecayedCount(short=float(pid), long=float(pid), stamp=now))
    clicks = board.activity_array(ids, now)[:, SIGNALS.index("click"), 0]
    assert clicks.tolist() == [float(pid) for pid in ids]
    board.forget(7)
    board.put(99_999, "purchase", DecayedCount(1.0, 1.0, now))
    assert board.activity_array([7], now).tolist() == [_as_array(QUIET)]
    assert board.activity_array([99_999, 8], now).tolist() == [
        _as_array(board.activity(99_999, now)),
        _as_array(board.activity(8, now)),
    ]
    assert board._row_of[99_999] == len(ids) + 1  # noqa: SLF001 - a new row, not product 7's
