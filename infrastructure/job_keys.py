"""Job keys and job states, in this process's memory (in-process jobs) or in Redis (workers).

A key is held by a token with a time to live: the holder renews it and lets go of it by its
token, so a holding that expired and was taken by a newer job is never let go of by the old
one. Records are the latest state of each named job of a kind (a Redis hash).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import redis

from application.ports import JobsUnavailable

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# Set the key to the token unless another token holds it: 1 when it is ours (now or again).
RENEW = """
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class JobKeys(Protocol):
    def acquire(self, key: str, ttl_s: float) -> str | None:
        """A new token holding `key` for `ttl_s`, or None while another one holds it."""
        ...

    def renew(self, key: str, token: str, ttl_s: float) -> bool:
        """Hold `key` by `token` for `ttl_s` more (again, if it expired); False when another
        token took it meanwhile."""
        ...

    def release(self, key: str, token: str) -> None:
        """Let go of `key` if `token` still holds it."""
        ...

    def close(self) -> None: ...


class InProcessJobKeys:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[str, tuple[str, float]] = {}  # key -> (token, expiry)
        self._lock = threading.Lock()
        self._clock = clock

    def acquire(self, key: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        with self._lock:
            if self._holder(key) is not None:
                return None
            self._held[key] = (token, self._clock() + ttl_s)
        return token

    def renew(self, key: str, token: str, ttl_s: float) -> bool:
        with self._lock:
            if self._holder(key) not in (None, token):
                return False
            self._held[key] = (token, self._clock() + ttl_s)
        return True

    def release(self, key: str, token: str) -> None:
        with self._lock:
            if self._holder(key) == token:
                del self._held[key]

    def close(self) -> None:
        pass

    def _holder(self, key: str) -> str | None:
        held = self._held.get(key)
        if held is None or held[1] <= self._clock():
            return None
        return held[0]


class RedisJobKeys:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}:job-key:"
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    def acquire(self, key: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        with _reaching_redis():
            taken = self._client.set(self._prefix + key, token, nx=True, px=_ms(ttl_s))
        return token if taken else None

    def renew(self, key: str, token: str, ttl_s: float) -> bool:
        with _reaching_redis():
            return bool(self._renew(keys=[self._prefix + key], args=[token, _ms(ttl_s)]))

    def release(self, key: str, token: str) -> None:
        with _reaching_redis():
            self._release(keys=[self._prefix + key], args=[token])

    def close(self) -> None:
        self._client.close()


class InProcessJobRecords:
    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, name: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._records[name] = dict(record)

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(name)
        return None if record is None else dict(record)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records.values()]


class RedisJobRecords:
    def __init__(self, client: redis.Redis, prefix: str, kind: str) -> None:
        self._client = client
        self._key = f"{prefix}:job-records:{kind}"

    def put(self, name: str, record: dict[str, Any]) -> None:
        with _reaching_redis():
            self._client.hset(self._key, name, json.dumps(record))

    def get(self, name: str) -> dict[str, Any] | None:
        with _reaching_redis():
            found = self._client.hget(self._key, name)
        return None if found is None else _record(found)

    def all(self) -> list[dict[str, Any]]:
        with _reaching_redis():
            found = self._client.hvals(self._key)
        return sorted((_record(r) for r in found), key=lambda r: r.get("started_at") or 0)


def _record(stored: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(stored)
    return record


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@contextmanager
def _reaching_redis() -> Iterator[None]:
    try:
        yield
    except REDIS_ERRORS as error:
        raise JobsUnavailable(f"the job keys' Redis cannot be reached: {type(error).__name__}") from error
