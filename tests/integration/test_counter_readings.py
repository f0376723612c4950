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
