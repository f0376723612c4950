"""Recent readings of agents' counters, for rates: in Redis when there is one (every worker
reads what another recorded), in this process otherwise. Never in the event log: they are
inputs of a computation, not facts of the domain."""

from __future__ import annotations

import hashlib
import threading
from collections import deque

import redis

from domain.kpi_values import Reading

# Readings kept per counter at most (a rate's window holds fewer at any sane interval).
MAX_READINGS = 1_000


def _within(readings: list[Reading], at: float, window_s: float) -> list[Reading]:
    return [r for r in readings if at - window_s <= r[0] <= at]


class InProcessCounterReadings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: dict[str, deque[Reading]] = {}

    def observe(self, key: str, at: float, value: float, window_s: float) -> list[Reading]:
        with self._lock:
            kept = self._readings.setdefault(key, deque(maxlen=MAX_READINGS))
            kept.append((at, value))
            while kept and kept[0][0] < at - window_s:
                kept.popleft()
            return _within(list(kept), at, window_s)


class RedisCounterReadings:
    """A Redis list per counter of "at value" entries, trimmed and expiring with its window."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def observe(self, key: str, at: float, value: float, window_s: float) -> list[Reading]:
        name = f"{self._prefix}:readings:{hashlib.sha256(key.encode()).hexdigest()[:32]}"
        pipe = self._client.pipeline(transaction=False)
        pipe.rpush(name, f"{at!r} {value!r}")
        pipe.ltrim(name, -MAX_READINGS, -1)
        pipe.expire(name, int(window_s * 2) + 60)
        pipe.lrange(name, 0, -1)
        entries = pipe.execute()[-1]
        readings = []
        for entry in entries:
            at_text, value_text = entry.decode().split(" ", 1)
            readings.append((float(at_text), float(value_text)))
        readings.sort()
        return _within(readings, at, window_s)
