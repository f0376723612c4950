"""Recent readings of agents' counters, for rates: in Redis when there is one (every worker
reads what another recorded), in this process otherwise. Never in the event log: they are
inputs of a computation, not facts of the domain."""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

import redis

from domain.auto_update import MAX_READINGS
from domain.kpi_values import Reading

# Counters kept in process at most, and how often (seconds of readings' time) stale ones go.
MAX_KEYS = 10_000
SWEEP_S = 60.0


def _within(readings: list[Reading], at: float, window_s: float) -> list[Reading]:
    return [r for r in readings if at - window_s <= r[0] <= at]


@dataclass
class _Counter:
    window_s: float
    readings: deque[Reading]


class InProcessCounterReadings:
    """Readings in this process, bounded: a counter whose newest reading is older than its
    window is dropped by a sweep every SWEEP_S (of readings' time), and at most `max_keys`
    counters are kept, the least recently observed dropped first (a goal removed, a mapping
    reconfigured: its old counter is never read again)."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._lock = threading.Lock()
        self._counters: OrderedDict[bytes, _Counter] = OrderedDict()
        self._max_keys = max_keys
        self._next_sweep = -math.inf

    def __len__(self) -> int:
        """How many counters are kept."""
        return len(self._counters)

    def observe(self, key: str, at: float, value: float, window_s: float) -> list[Reading]:
        name = hashlib.sha256(key.encode()).digest()[:16]
        with self._lock:
            if at >= self._next_sweep:
                self._sweep(at)
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = _Counter(window_s, deque(maxlen=MAX_READINGS))
                while len(self._counters) > self._max_keys:
                    self._counters.popitem(last=False)
            else:
                self._counters.move_to_end(name)
            counter.window_s = window_s
            kept = counter.readings
            kept.append((at, value))
            while kept and kept[0][0] < at - window_s:
                kept.popleft()
            return _within(list(kept), at, window_s)

    def _sweep(self, at: float) -> None:
        stale = [k for k, c in self._counters.items() if not c.readings or c.readings[-1][0] < at - c.window_s]
        for name in stale:
            del self._counters[name]
        self._next_sweep = at + SWEEP_S


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
