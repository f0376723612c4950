"""A budget of failures per key, on the in-process limiter and a clock the tests move: a key is
held back exactly while one more failure would be refused, a flood that asks before each try
fails no more often than the rate allows, and the keys remembered are bounded."""

from __future__ import annotations

import pytest

from infrastructure.failure_budget import FailureBudget
from infrastructure.ratelimit import Decision, InProcessRateLimiter, Rate

RATE = Rate(3, 60.0)  # a failure every 20 s after a burst of 3
INTERVAL_S = RATE.period_s / RATE.limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def budget(clock: Clock, rate: Rate = RATE, max_keys: int = 100) -> FailureBudget:
    return FailureBudget(InProcessRateLimiter(clock), rate, max_keys=max_keys, clock=clock)


def test_a_key_is_held_back_once_its_failures_spend_the_budget_and_until_one_more_would_count(
    clock: Clock,
) -> None:
    failures = budget(clock)
    for _ in range(RATE.limit):
        assert failures.spent("a") is None
        failures.failed("a")
    refusal = failures.spent("a")
    assert refusal is not None and not refusal.allowed
    assert refusal.retry_after_s == pytest.approx(INTERVAL_S)
    assert refusal.reset_s == pytest.approx(RATE.period_s)
    assert (refusal.limit, refusal.remaining) == (RATE.limit, 0)
    assert failures.spent("b") is None  # keys are apart
    clock.now += INTERVAL_S - 0.001
    assert failures.spent("a") is not None
    clock.now += 0.001
    assert failures.spent("a") is None


def test_a_flood_that_asks_before_each_try_fails_no_more_often_than_the_rate(clock: Clock) -> None:
    failures = budget(clock)
    started, counted = clock.now, 0
    for i in range(10_001):  # a try every 10 ms, for 100 s from the first to the last
        clock.now = started + i / 100
        if failures.spent("flood") is None:
            failures.failed("flood")
            counted += 1
    # GCRA's bound over 100 s: the burst, and one every interval after it
    assert counted == RATE.limit + int(100 / INTERVAL_S)


def test_a_budget_of_one_is_spent_by_one_failure(clock: Clock) -> None:
    failures = budget(clock, Rate(1, 10.0))
    failures.failed("a")
    refusal = failures.spent("a")
    assert refusal is not None and refusal.retry_after_s == pytest.approx(10.0)


def test_what_is_remembered_is_bounded_and_the_oldest_forgotten_first(clock: Clock) -> None:
    failures = budget(clock, Rate(1, 3600.0), max_keys=5)
    for i in range(12):
        failures.failed(f"k{i}")
    assert [failures.spent(f"k{i}") is not None for i in range(12)] == [False] * 7 + [True] * 5


class Unavailable(InProcessRateLimiter):
    """A limiter that fails open: every hit allowed, with a full bucket."""

    def hit(self, key: str, rate: Rate) -> Decision:
        return Decision(allowed=True, limit=rate.limit, remaining=rate.limit, reset_s=0.0, retry_after_s=0.0)


def test_failures_a_limiter_failing_open_cannot_count_hold_nothing_back(clock: Clock) -> None:
    failures = FailureBudget(Unavailable(clock), RATE, clock=clock)
    for _ in range(10 * RATE.limit):
        failures.failed("a")
    assert failures.spent("a") is None
