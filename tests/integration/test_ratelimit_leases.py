"""LeasedRateLimiter on a real Redis: most hits of a busy client are decided in process, the
shared bound holds across processes, a quiet client stays exact, and refusals come from Redis."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from infrastructure.ratelimit import Decision, Rate, RedisRateLimiter
from infrastructure.ratelimit_leases import LEASE_TTL_S, LeasedRateLimiter


class CountingLimiter(RedisRateLimiter):
    """The real Redis limiter, counting the round trips asked of it."""

    leases = 0

    def lease(self, key: str, rate: Rate, wanted: int) -> tuple[Decision, int]:
        self.leases += 1
        return super().lease(key, rate, wanted)


@pytest.fixture
def shared() -> Iterator[CountingLimiter]:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    client = redis.Redis.from_url(url, socket_timeout=5)
    prefix = f"a2a:rl:test:{uuid.uuid4().hex}:"
    yield CountingLimiter(client, prefix=prefix, fail_open=False)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_a_busy_client_is_mostly_decided_in_process(shared: CountingLimiter) -> None:
    limiter = LeasedRateLimiter(shared)
    rate = Rate(100_000, 60.0)
    assert limiter.hit_at_once("client:a:reads", rate) is None  # no lease yet: nothing counted
    allowed = sum(limiter.hit("client:a:reads", rate).allowed for _ in range(2_000))
    assert allowed == 2_000
    assert shared.leases < 40  # leases doubled up to 100 requests each


def test_the_shared_bound_holds_across_processes(shared: CountingLimiter) -> None:
    one, two = LeasedRateLimiter(shared), LeasedRateLimiter(shared)
    rate = Rate(500, 3600.0)  # leases of up to 10; refill negligible during the test
    allowed = 0
    for _ in range(600):
        allowed += one.hit("client:b:reads", rate).allowed
        allowed += two.hit("client:b:reads", rate).allowed
    # Every request let through was debited in Redis first; a lease left unspent when the
    # bucket ran dry is counted but never served (at most a lease per process).
    assert 500 - 2 * 10 <= allowed <= 500
    refused = one.hit("client:b:reads", rate)
    assert not refused.allowed and refused.retry_after_s > 0


def test_a_quiet_client_stays_exact(shared: CountingLimiter) -> None:
    now = [1000.0]
    limiter = LeasedRateLimiter(shared, clock=lambda: now[0])
    rate = Rate(600, 60.0)
    for _ in range(10):
        assert limiter.hit("client:c:reads", rate).allowed
        now[0] += LEASE_TTL_S * 2  # each request after the last lease expired
    # Leases never grew past one request, and every request asked Redis.
    assert shared.leases == 10
    assert shared.hit("client:c:reads", rate).remaining == 600 - 11


def test_leases_taken_by_threads_that_missed_at_once_are_pooled_not_lost(shared: CountingLimiter) -> None:
    """Two threads find the lease spent at the same moment and each takes a new one from
    Redis: both are kept, so every request Redis counted is served."""
    limiter = LeasedRateLimiter(shared)
    rate = Rate(60_000, 60.0)
    key = "client:d:reads"
    while shared.leases < 4:  # a busy client: leases grow to 8
        limiter.hit(key, rate)
    while limiter.hit_at_once(key, rate) is not None:  # the last one spent
        pass
    together = threading.Barrier(2)
    leased = shared.lease

    def lease_together(key: str, rate: Rate, wanted: int) -> tuple[Decision, int]:
        together.wait()  # both threads are past their miss before either takes its lease
        return leased(key, rate, wanted)

    shared.lease = lease_together  # type: ignore[method-assign]
    threads = [threading.Thread(target=limiter.hit, args=(key, rate)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared.lease = leased  # type: ignore[method-assign]
    served = 0
    while limiter.hit_at_once(key, rate) is not None:
        served += 1
    assert served == 2 * (16 - 1)  # two leases of 16, one request of each spent at once
