"""GCRA rate limiting in process, on a fake clock: no I/O, exact figures.

The window bound checked by the property test is GCRA's exact one (see infrastructure.ratelimit):
in any closed window of ``w`` seconds at most ``limit + floor(w / T)`` requests are allowed, where
``T >= period / limit`` is the emission interval, hence at most ``limit + floor(w * limit / period)``.
For ``w`` just under one period this is ``2 * limit - 1`` (a full burst, then a refilled bucket),
which is why "limit + 1 per period" does not hold for GCRA or any token bucket.
"""

from __future__ import annotations

import itertools
import threading
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infrastructure.ratelimit import Decision, InProcessRateLimiter, Rate

US = 1_000_000


class FakeClock:
    """A clock read by the limiter, moved by hand; time is kept in whole microseconds."""

    def __init__(self, start_us: int = 1_000 * US) -> None:
        self.now_us = start_us

    def __call__(self) -> float:
        return self.now_us / US

    def advance(self, seconds: float) -> None:
        self.now_us += round(seconds * US)


def make() -> tuple[InProcessRateLimiter, FakeClock]:
    clock = FakeClock()
    return InProcessRateLimiter(clock=clock), clock


# --- Rate.parse --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("600/minute", 600, 60.0),
        ("10/second", 10, 1.0),
        ("1000/hour", 1000, 3600.0),
        ("5000/day", 5000, 86400.0),
        ("10/s", 10, 1.0),
        ("10/sec", 10, 1.0),
        ("3/m", 3, 60.0),
        ("3/min", 3, 60.0),
        ("7/h", 7, 3600.0),
        ("1/d", 1, 86400.0),
        (" 20 / Minute ", 20, 60.0),
        ("1/SECOND", 1, 1.0),
    ],
)
def test_parse_accepts_count_per_unit(text: str, limit: int, period: float) -> None:
    assert Rate.parse(text) == Rate(limit=limit, period_s=period)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10",
        "/minute",
        "10/",
        "10/fortnight",
        "10/minutes2",
        "0/minute",
        "-5/minute",
        "1.5/second",
        "10 per minute",
        "10/5 minutes",
        "ten/minute",
        "10//minute",
        "10/minute/extra",
    ],
)
def test_parse_rejects_anything_else_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate.parse(text)


@pytest.mark.parametrize(("limit", "period"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -1.0), (1, float("inf"))])
def test_rate_refuses_nonsense(limit: int, period: float) -> None:
    with pytest.raises(ValueError):
        Rate(limit=limit, period_s=period)


# --- behaviour on a fake clock -----------------------------------------------------------------


def test_burst_of_exactly_limit_then_denied_with_retry_after_one_interval() -> None:
    limiter, _ = make()
    rate = Rate(10, 1.0)
    decisions = [limiter.hit("k", rate) for _ in range(10)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert all(d.retry_after_s == 0 and d.limit == 10 for d in decisions)

    denied = limiter.hit("k", rate)
    assert not denied.allowed
    assert denied.remaining == 0
    assert denied.retry_after_s == pytest.approx(0.1)
    assert denied.reset_s == pytest.approx(1.0)


def test_after_waiting_retry_after_exactly_one_more_passes() -> None:
    limiter, clock = make()
    rate = Rate(10, 1.0)
    for _ in range(10):
        assert limiter.hit("k", rate).allowed
    denied = limiter.hit("k", rate)
    clock.advance(denied.retry_after_s - 0.000_001)
    assert not limiter.hit("k", rate).allowed  # one microsecond early: still denied
    clock.advance(0.000_001)
    passed = limiter.hit("k", rate)
    assert passed.allowed
    assert passed.remaining == 0
    again = limiter.hit("k", rate)
    assert not again.allowed
    assert again.retry_after_s == pytest.approx(0.1)


def test_denied_requests_do_not_push_the_tat() -> None:
    limiter, clock = make()
    rate = Rate(2, 1.0)
    limiter.hit("k", rate)
    limiter.hit("k", rate)
    first = limiter.hit("k", rate)
    assert first.retry_after_s == pytest.approx(0.5)
    for _ in range(50):  # hammering while denied changes nothing
        clock.advance(0.001)
        denied = limiter.hit("k", rate)
        assert not denied.allowed
    assert denied.retry_after_s == pytest.approx(0.5 - 0.05)
    clock.advance(denied.retry_after_s)
    assert limiter.hit("k", rate).allowed


def test_a_client_hammering_continuously_still_gets_the_steady_rate() -> None:
    limiter, clock = make()
    rate = Rate.parse("10/second")
    allowed_at: list[int] = []
    for _ in range(10 * 100):  # 10 simulated seconds, 100 attempts per second
        if limiter.hit("hammer", rate).allowed:
            allowed_at.append(clock.now_us)
        clock.advance(0.01)
    # GCRA's bound over 0 .. 9.99 s is 10 + floor(9.99 / 0.1) = 109, and hammering reaches it
    assert len(allowed_at) == 109
    start = allowed_at[0]
    assert allowed_at[:10] == [start + i * 10_000 for i in range(10)]  # the first attempts: the burst
    # once the bucket is empty, exactly one every emission interval, never a lock-out
    spacing = {b - a for a, b in itertools.pairwise(allowed_at[20:])}
    assert spacing == {100_000}
    assert sum(1 for t in allowed_at if t >= start + 9 * US) == 10  # the last simulated second


def test_keys_are_independent() -> None:
    limiter, _ = make()
    rate = Rate(3, 60.0)
    assert all(limiter.hit("client:a:writes", rate).allowed for _ in range(3))
    assert not limiter.hit("client:a:writes", rate).allowed
    assert all(limiter.hit("client:b:writes", rate).allowed for _ in range(3))
    assert limiter.hit("client:a:reads", rate).allowed
    assert not limiter.hit("client:b:writes", rate).allowed


def test_remaining_and_reset_are_consistent() -> None:
    limiter, clock = make()
    rate = Rate(4, 2.0)  # one request every 0.5 s
    d = limiter.hit("k", rate)
    assert (d.remaining, d.reset_s) == (3, 0.5)
    d = limiter.hit("k", rate)
    assert (d.remaining, d.reset_s) == (2, 1.0)
    clock.advance(0.75)  # 1.5 intervals refilled: one whole request back
    d = limiter.hit("k", rate)
    assert (d.remaining, d.reset_s) == (2, 0.75)
    clock.advance(d.reset_s)  # bucket full again: a whole burst
    assert [limiter.hit("k", rate).remaining for _ in range(4)] == [3, 2, 1, 0]
    denied = limiter.hit("k", rate)
    assert (denied.allowed, denied.remaining, denied.reset_s) == (False, 0, 2.0)


def test_limit_of_one_spaces_requests_by_the_period() -> None:
    limiter, clock = make()
    rate = Rate.parse("1/minute")
    assert limiter.hit("k", rate).allowed
    denied = limiter.hit("k", rate)
    assert not denied.allowed
    assert denied.retry_after_s == pytest.approx(60.0)
    clock.advance(59.0)
    assert not limiter.hit("k", rate).allowed
    clock.advance(1.0)
    assert limiter.hit("k", rate).allowed


def test_forgotten_keys_behave_like_new_ones() -> None:
    limiter, clock = make()
    rate = Rate(2, 1.0)
    for i in range(3000):  # enough keys to trigger sweeps
        limiter.hit(f"k{i}", rate)
        clock.advance(0.01)
    assert len(limiter._tats) < 3000
    assert [limiter.hit("k0", rate).allowed for _ in range(3)] == [True, True, False]


def retained_bytes(work: Callable[[], None]) -> int:
    """Memory still allocated after `work`, over what was before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_huge_key_is_not_kept_whole() -> None:
    limiter, _ = make()
    rate = Rate(2, 60.0)

    def spray() -> None:
        for i in range(32):  # 32 MiB of keys sent, each one bucket
            limiter.hit(f"token:{i:04d}{'x' * (1 << 20)}", rate)

    assert retained_bytes(spray) < 256 * 1024


def test_huge_keys_that_differ_only_at_their_end_are_separate_buckets() -> None:
    limiter, _ = make()
    rate = Rate(1, 60.0)
    same_start = "client:" + "x" * (1 << 20)
    assert limiter.hit(same_start + "a", rate).allowed
    assert limiter.hit(same_start + "b", rate).allowed
    assert not limiter.hit(same_start + "a", rate).allowed


def test_the_keys_held_are_bounded_in_number_and_a_key_held_back_is_not_forgotten() -> None:
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock=clock, max_keys=1000)
    rate = Rate(3, 60.0)
    while limiter.hit("abuser", rate).allowed:
        pass

    def spray() -> None:
        for i in range(50_000):  # distinct keys, each still within its window
            limiter.hit(f"address:{i}", rate)
            if i % 100 == 0:  # while the abuser keeps asking, and is refused throughout
                assert not limiter.hit("abuser", rate).allowed

    # 1,000 keys fit in well under 256 KiB; 50,000 would not
    assert retained_bytes(spray) < 256 * 1024
    assert not limiter.hit("abuser", rate).allowed


def test_thread_safe_exactly_limit_allowed() -> None:
    limiter = InProcessRateLimiter()  # real monotonic clock; a one-hour period leaves no refill
    rate = Rate.parse("20/hour")
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        mine = [limiter.hit("shared", rate).allowed for _ in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 20


# --- properties --------------------------------------------------------------------------------

rates = st.builds(
    lambda limit, period_us: Rate(limit, period_us / US),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=3 * US),
)
# gaps between successive requests, in microseconds (many zeros: simultaneous requests)
gaps = st.lists(
    st.one_of(st.just(0), st.integers(min_value=0, max_value=2_000), st.integers(min_value=0, max_value=US)),
    min_size=1,
    max_size=150,
)


def replay(
    rate: Rate, gaps_us: list[int]
) -> tuple[InProcessRateLimiter, FakeClock, list[tuple[int, Decision]]]:
    limiter, clock = make()
    history: list[tuple[int, Decision]] = []
    for gap in gaps_us:
        clock.now_us += gap
        history.append((clock.now_us, limiter.hit("k", rate)))
    return limiter, clock, history


@settings(max_examples=300, deadline=None)
@given(rate=rates, gaps_us=gaps)
def test_property_allowed_in_any_window_within_gcra_bound(rate: Rate, gaps_us: list[int]) -> None:
    """At most ``limit + floor(w * limit / period)`` allowed in any closed window of length ``w``."""
    _, _, history = replay(rate, gaps_us)
    allowed = [t for t, d in history if d.allowed]
    assert allowed, "the first request on a fresh key is always allowed"
    period_us = round(rate.period_s * US)
    for i in range(len(allowed)):
        for j in range(i, len(allowed)):
            window_us = allowed[j] - allowed[i]
            assert j - i + 1 <= rate.limit + window_us * rate.limit // period_us
        # in particular, never more than 2*limit - 1 within less than one period
        within = sum(1 for t in allowed[i:] if t - allowed[i] < period_us)
        assert within <= 2 * rate.limit - 1


@settings(max_examples=300, deadline=None)
@given(rate=rates, gaps_us=gaps)
def test_property_decisions_are_self_consistent(rate: Rate, gaps_us: list[int]) -> None:
    """Figures are in range, and ``remaining`` is exactly how many more pass at that instant."""
    limiter, _, history = replay(rate, gaps_us)
    for _, d in history:
        assert d.limit == rate.limit
        assert 0 <= d.remaining <= rate.limit - 1
        assert d.reset_s >= 0
        if d.allowed:
            assert d.retry_after_s == 0
            assert d.reset_s > 0
        else:
            assert d.retry_after_s > 0
            assert d.remaining == 0
            assert d.reset_s >= d.retry_after_s
    last = history[-1][1]
    more = 0
    while limiter.hit("k", rate).allowed:
        more += 1
    assert more == last.remaining


@settings(max_examples=300, deadline=None)
@given(rate=rates, gaps_us=gaps)
def test_property_retry_after_and_reset_are_exact(rate: Rate, gaps_us: list[int]) -> None:
    """Denied: one microsecond before ``retry_after`` still denied, at ``retry_after`` allowed.
    Any decision: at ``reset`` a full burst of ``limit`` passes, one microsecond earlier only ``limit - 1``."""
    _, _, history = replay(rate, gaps_us)
    last_at, last = history[-1]

    def burst_after(delay_us: int) -> int:
        limiter, clock, _ = replay(rate, gaps_us)
        clock.now_us = last_at + delay_us
        count = 0
        while limiter.hit("k", rate).allowed:
            count += 1
        return count

    if not last.allowed:
        retry_us = round(last.retry_after_s * US)
        assert burst_after(retry_us - 1) == 0
        assert burst_after(retry_us) >= 1
    reset_us = round(last.reset_s * US)
    assert burst_after(reset_us) == rate.limit
    if reset_us > 0:
        assert burst_after(reset_us - 1) == rate.limit - 1
