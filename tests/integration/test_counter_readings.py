"""Counter readings for rates, one suite for both stores: in process and in Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from application.collection import CounterReadings
from infrastructure.counter_readings import InProcessCounterReadings, RedisCounterReadings


@pytest.fixture(params=["in_process", "redis"])
def readings(request: pytest.FixtureRequest) -> Iterator[CounterReadings]:
    if request.param == "in_process":
        yield InProcessCounterReadings()
        return
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    client = redis.Redis.from_url(url)
    prefix = f"readings{uuid.uuid4().hex[:8]}"
    yield RedisCounterReadings(client, prefix)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_readings_come_back_oldest_first_within_their_window(readings: CounterReadings) -> None:
    assert readings.observe("a", 100.0, 1.0, 60.0) == [(100.0, 1.0)]
    assert readings.observe("a", 130.0, 4.5, 60.0) == [(100.0, 1.0), (130.0, 4.5)]
    assert readings.observe("a", 170.0, 9.0, 60.0) == [(130.0, 4.5), (170.0, 9.0)]


def test_each_counter_has_its_own_readings(readings: CounterReadings) -> None:
    readings.observe("tenant-a agent", 1.0, 10.0, 60.0)
    assert readings.observe("tenant-b agent", 2.0, 20.0, 60.0) == [(2.0, 20.0)]


def test_in_process_readings_drop_stale_counters_and_keep_a_bounded_number() -> None:
    readings = InProcessCounterReadings(max_keys=3)
    readings.observe("removed goal", 100.0, 1.0, 60.0)
    readings.observe("kept", 100.0, 1.0, 600.0)
    # a minute and more later: the removed goal's counter is past its window, swept away
    readings.observe("kept", 200.0, 2.0, 600.0)
    assert len(readings) == 1
    for index in range(5):
        readings.observe(f"reconfigured {index}", 210.0, 1.0, 600.0)
    assert len(readings) == 3  # the least recently observed dropped
    assert readings.observe("kept", 220.0, 3.0, 600.0) == [(220.0, 3.0)]


def test_redis_readings_expire_with_their_window() -> None:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    client = redis.Redis.from_url(url)
    prefix = f"readings{uuid.uuid4().hex[:8]}"
    try:
        RedisCounterReadings(client, prefix).observe("a", 100.0, 1.0, 60.0)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        assert len(keys) == 1 and 0 < client.ttl(keys[0]) <= 180
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
