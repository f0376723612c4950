"""RedisRateLimiter against a real Redis (TEST_REDIS_URL), on the server's real clock; and
behind its circuit breaker against a private redis-server that hangs and comes back.

Periods are small and every timing check has a wide margin: the assertions are functional (who is
let through), not measurements.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from infrastructure.breaker import CircuitBreaker, CircuitOpen
from infrastructure.ratelimit import Rate, RateLimiterUnavailable, RedisRateLimiter
from tests.integration.support import wait_until
from tests.private_servers import PrivateRedis


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    return url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    conn.ping()
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A prefix of this test's own; its keys are deleted afterwards."""
    value = f"a2a:rl:test:{uuid.uuid4().hex}:"
    yield value
    keys = list(client.scan_iter(match=value + "*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def limiter(client: redis.Redis, prefix: str) -> RedisRateLimiter:
    return RedisRateLimiter(client, prefix=prefix, fail_open=False)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def unreachable_client() -> redis.Redis:
    # no retries: redis-py's default policy backs off for seconds before giving up
    return redis.Redis(
        host="127.0.0.1",
        port=unused_port(),
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )


def test_burst_then_denied_then_let_through_after_retry_after(limiter: RedisRateLimiter) -> None:
    rate = Rate.parse("5/second")
    decisions = [limiter.hit("client:abc:writes", rate) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 and d.retry_after_s == 0 for d in decisions)
    assert all(0 < d.reset_s <= (i + 1) * 0.2 for i, d in enumerate(decisions))

    denied = limiter.hit("client:abc:writes", rate)
    assert not denied.allowed
    assert denied.remaining == 0
    assert 0 < denied.retry_after_s <= 0.2
    assert denied.retry_after_s < denied.reset_s <= 1.0

    time.sleep(denied.retry_after_s + 0.005)
    passed = limiter.hit("client:abc:writes", rate)
    assert passed.allowed
    assert passed.retry_after_s == 0


def test_denied_hits_do_not_write_the_key(
    limiter: RedisRateLimiter, client: redis.Redis, prefix: str
) -> None:
    rate = Rate.parse("2/minute")
    assert limiter.hit("k", rate).allowed
    assert limiter.hit("k", rate).allowed
    tat = client.get(prefix + "k")
    ttl_ms = client.pttl(prefix + "k")
    assert tat is not None
    assert 0 < ttl_ms <= 60_000  # expires when the bucket is full again
    retries = []
    for _ in range(20):
        denied = limiter.hit("k", rate)
        assert not denied.allowed
        retries.append(denied.retry_after_s)
    assert client.get(prefix + "k") == tat  # the TAT was not pushed by denied hits
    assert retries == sorted(retries, reverse=True)  # the wait only shrinks
    assert 0 < retries[-1] <= 30.0


def test_a_client_hammering_is_let_through_at_the_steady_rate(limiter: RedisRateLimiter) -> None:
    rate = Rate.parse("20/second")  # one every 50 ms after a burst of 20
    allowed = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        if limiter.hit("hammer", rate).allowed:
            allowed += 1
        time.sleep(0.002)
    elapsed = time.monotonic() - started
    assert allowed > 20  # not locked out after the burst
    assert allowed <= 20 + int(elapsed / 0.05) + 1  # GCRA's bound: burst + elapsed / interval


def test_keys_are_independent(limiter: RedisRateLimiter) -> None:
    rate = Rate.parse("3/minute")
    assert all(limiter.hit("client:a:writes", rate).allowed for _ in range(3))
    assert not limiter.hit("client:a:writes", rate).allowed
    assert all(limiter.hit("client:b:writes", rate).allowed for _ in range(3))
    assert limiter.hit("client:a:reads", rate).allowed
    assert not limiter.hit("client:b:writes", rate).allowed


def test_a_huge_key_is_stored_under_a_bounded_name(
    limiter: RedisRateLimiter, client: redis.Redis, prefix: str
) -> None:
    rate = Rate(1, 60.0)
    huge = "token:" + "x" * (1 << 20)
    assert limiter.hit(huge + "a", rate).allowed
    assert limiter.hit(huge + "b", rate).allowed  # its own bucket: the end of a key counts
    assert not limiter.hit(huge + "a", rate).allowed
    names = list(client.scan_iter(match=prefix + "*"))
    assert len(names) == 2
    assert max(len(name) for name in names) <= len(prefix) + 128


def test_prefixes_separate_limiters(client: redis.Redis, prefix: str) -> None:
    rate = Rate.parse("1/minute")
    one = RedisRateLimiter(client, prefix=prefix + "one:")
    two = RedisRateLimiter(client, prefix=prefix + "two:")
    assert one.hit("k", rate).allowed
    assert not one.hit("k", rate).allowed
    assert two.hit("k", rate).allowed


def test_atomic_under_concurrency_exactly_limit_allowed(limiter: RedisRateLimiter) -> None:
    rate = Rate.parse("20/minute")  # one every 3 s: no refill while the 400 hits run
    barrier = threading.Barrier(8)
    lock = threading.Lock()
    results: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            mine = [limiter.hit("shared", rate).allowed for _ in range(50)]
        except BaseException as error:
            errors.append(error)
            return
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 400
    assert sum(results) == 20


def test_fail_open_allows_and_reports_the_error() -> None:
    seen: list[Exception] = []
    limiter = RedisRateLimiter(unreachable_client(), fail_open=True, on_unavailable=seen.append)
    rate = Rate.parse("5/second")
    decisions = [limiter.hit("k", rate) for _ in range(10)]
    assert all(d.allowed for d in decisions)
    assert all(d.remaining == 5 and d.retry_after_s == 0 and d.limit == 5 for d in decisions)
    assert len(seen) == 10
    assert all(isinstance(e, redis.ConnectionError) for e in seen)


def test_fail_open_without_callback_still_allows() -> None:
    limiter = RedisRateLimiter(unreachable_client())
    assert limiter.hit("k", Rate.parse("1/hour")).allowed


def test_fail_closed_raises_unavailable_and_reports_the_error() -> None:
    seen: list[Exception] = []
    limiter = RedisRateLimiter(unreachable_client(), fail_open=False, on_unavailable=seen.append)
    with pytest.raises(RateLimiterUnavailable) as info:
        limiter.hit("k", Rate.parse("5/second"))
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert info.value.retry_after_s > 0
    assert seen == [info.value.__cause__]


# -- behind a circuit breaker, against a Redis of the test's own that hangs -------------------

TIMEOUT_S = 0.5  # the limiter's client: as the server's
FAILURES = 3  # in a row, to open the breaker
PROBE_S = 0.5
RECOVERY_S = 2.0  # "within a second or two of Redis's return"


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def guarded(private_redis: PrivateRedis) -> Iterator[Callable[..., RedisRateLimiter]]:
    made: list[RedisRateLimiter] = []

    def make(**options: Any) -> RedisRateLimiter:
        client = redis.Redis.from_url(
            private_redis.url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        breaker = CircuitBreaker("redis-test", client.ping, failures_to_open=FAILURES, probe_every_s=PROBE_S)
        made.append(RedisRateLimiter(client, breaker=breaker, **options))
        return made[-1]

    yield make
    for limiter in made:
        limiter.close()


def test_while_redis_hangs_only_the_calls_before_the_breaker_opens_wait_and_limits_come_back(
    private_redis: PrivateRedis, guarded: Callable[..., RedisRateLimiter]
) -> None:
    seen: list[Exception] = []
    limiter = guarded(fail_open=True, on_unavailable=seen.append)
    rate = Rate(2, 3600.0)
    assert [limiter.hit("k", rate).allowed for _ in range(3)] == [True, True, False]
    private_redis.pause()
    assert all(limiter.hit("k", rate).allowed for _ in range(30))  # let through, all
    waited = [e for e in seen if not isinstance(e, CircuitOpen)]
    assert len(seen) == 30
    assert len(waited) == FAILURES and all(isinstance(e, redis.TimeoutError) for e in waited)
    private_redis.resume()
    # the breaker's probe finds Redis back, and the bucket it kept limits again
    wait_until(lambda: not limiter.hit("k", rate).allowed, RECOVERY_S, "limits after Redis's return")


def test_fail_closed_behind_an_open_breaker_refuses_at_once_until_the_next_probe(
    private_redis: PrivateRedis, guarded: Callable[..., RedisRateLimiter]
) -> None:
    seen: list[Exception] = []
    limiter = guarded(fail_open=False, on_unavailable=seen.append)
    rate = Rate(100, 60.0)
    assert limiter.hit("k", rate).allowed
    private_redis.pause()
    refusals = []
    for _ in range(30):
        with pytest.raises(RateLimiterUnavailable) as refused:
            limiter.hit("k", rate)
        refusals.append(refused.value)
    assert sum(isinstance(e, redis.TimeoutError) for e in seen) == FAILURES
    assert all(isinstance(r.__cause__, CircuitOpen) for r in refusals[FAILURES:])
    assert all(0 <= r.retry_after_s <= PROBE_S for r in refusals[FAILURES:])
    private_redis.resume()
    wait_until(lambda: _decided(limiter, rate), RECOVERY_S, "decisions after Redis's return")


def _decided(limiter: RedisRateLimiter, rate: Rate) -> bool:
    try:
        return limiter.hit("k", rate).allowed
    except RateLimiterUnavailable:
        return False
