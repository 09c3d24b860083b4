"""The login lockout evaluator (policies/lockout.py): from failure times to "locked until"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plexhub.policies.lockout import LockoutRule, evaluate

RULE = LockoutRule(max_failures=5, window=900, lock_seconds=900, max_lock_seconds=3600)


def test_the_fifth_failure_in_the_window_locks_for_the_lock_length() -> None:
    four = [100.0, 110, 120, 130]
    state = evaluate(four, 140, RULE)
    assert (state.locked, state.until, state.counted) == (False, None, 4)
    five = [*four, 140]
    assert evaluate(five, 140, RULE).locked
    assert evaluate(five, 140, RULE).until == 140 + 900
    assert evaluate(five, 140 + 899, RULE).locked
    after = evaluate(five, 140 + 900, RULE)
    assert (after.locked, after.until, after.counted, after.locks) == (False, 1040, 0, 1)


def test_failures_outside_the_window_do_not_add_up() -> None:
    spaced = [i * 901.0 for i in range(20)]
    state = evaluate(spaced, 20 * 901, RULE)
    assert not state.locked
    assert state.locks == 0


def test_two_hundred_guesses_in_45_seconds_lock_once_and_do_not_push_the_lock() -> None:
    guesses = [i * 45 / 200 for i in range(200)]
    state = evaluate(guesses, 45, RULE)
    assert state.locked
    assert state.locks == 1  # failures inside the lock are not counted
    assert state.until == pytest.approx(guesses[4] + 900)


def test_each_further_lock_doubles_up_to_the_longest() -> None:
    t, history, lengths = 0.0, [], []
    for _ in range(5):
        history += [t + i for i in range(5)]
        state = evaluate(history, t + 4, RULE)
        assert state.locked
        assert state.until is not None
        lengths.append(state.until - (t + 4))
        t = state.until + 1
    assert lengths == [900, 1800, 3600, 3600, 3600]


def test_times_in_the_future_do_not_count_yet() -> None:
    assert not evaluate([1000.0] * 10, 10, RULE).locked


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        LockoutRule(max_failures=0)


@given(st.lists(st.floats(min_value=0, max_value=10_000), max_size=60),
       st.floats(min_value=0, max_value=12_000))
def test_a_history_never_counts_past_the_limit(times: list[float], now: float) -> None:
    state = evaluate(times, now, RULE)
    assert state.counted < RULE.max_failures
    assert state.locks * RULE.max_failures <= len(times)
    if state.locked:
        assert state.until is not None
        assert now < state.until <= now + RULE.max_lock_seconds
