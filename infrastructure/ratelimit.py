"""Per-key rate limiting with GCRA (the generic cell rate algorithm).

GCRA keeps a single number per key, the *theoretical arrival time* (TAT): the instant at which
the key's bucket would be empty again if no further request arrived. With a rate of ``limit``
requests per ``period``:

* the emission interval is ``T = period / limit`` (the steady spacing between requests);
* the burst tolerance is ``tau = (limit - 1) * T``, so ``limit`` requests may arrive at once;
* a request at ``now`` is allowed iff ``max(TAT, now) - now <= tau``; when it is, the TAT becomes
  ``max(TAT, now) + T``. A denied request leaves the TAT untouched, so a client that keeps
  hammering is let through again as soon as the emission interval has passed.

This is equivalent to a token bucket of capacity ``limit`` refilled continuously at
``limit / period``; it is *not* a fixed window. Its exact bound: in any closed time window of
length ``w`` at most ``limit + floor(w / T)`` requests are allowed (so at most ``2 * limit - 1``
in any half-open window of one period: a full burst at its start, the bucket refilled during it).

All arithmetic is done on whole microseconds. ``T`` is rounded *up* to a whole microsecond, so the
effective period can exceed the nominal one by less than ``limit`` microseconds, never fall short.

Two implementations share these exact semantics: :class:`InProcessRateLimiter` (embedded default,
one process) and :class:`RedisRateLimiter` (shared, atomic through one Lua script using the Redis
server's clock, behind a circuit breaker while Redis is away).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
import redis.exceptions

from infrastructure.breaker import CircuitBreaker, CircuitOpen

__all__ = [
    "Decision",
    "InProcessRateLimiter",
    "Rate",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisRateLimiter",
    "bounded_key",
    "wait_for_room",
]

_US_PER_S = 1_000_000
# A key longer than this is stored as its start and a digest of the whole, so what a caller
# sends (a client id, an address) never decides how much memory or Redis a bucket takes.
MAX_KEY_CHARS = 128
_KEPT_START = 64

_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*([A-Za-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``period_s`` seconds; ``limit`` is also the largest burst."""

    limit: int
    period_s: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"rate limit must be a positive integer, got {self.limit!r}")
        if not math.isfinite(self.period_s) or self.period_s <= 0:
            raise ValueError(f"rate period must be a positive number of seconds, got {self.period_s!r}")
        if round(self.period_s * _US_PER_S) < 1:
            raise ValueError(f"rate period must be at least one microsecond, got {self.period_s!r}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``"<N>/<unit>"``: unit one of second|minute|hour|day (or s, sec, m, min, h, d).

        Examples: ``"600/minute"``, ``"10/second"``, ``"1000/hour"``, ``"5/s"``. Case and blanks
        around the parts are ignored; anything else raises :class:`ValueError`.
        """
        match = _RATE_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"invalid rate {text!r}: expected '<N>/<unit>' with unit second, minute, hour or day "
                "(or s, sec, m, min, h, d), e.g. '600/minute'"
            )
        count, unit = match.groups()
        period = _UNITS.get(unit.lower())
        if period is None:
            raise ValueError(
                f"invalid rate {text!r}: unknown unit {unit!r}; use second, minute, hour or day "
                "(or s, sec, m, min, h, d)"
            )
        limit = int(count)
        if limit < 1:
            raise ValueError(f"invalid rate {text!r}: the number of requests must be at least 1")
        return cls(limit=limit, period_s=period)

    def __str__(self) -> str:
        return f"{self.limit}/{self.period_s:g}s"


@dataclass(frozen=True)
class Decision:
    """The outcome of one request against a key's rate.

    ``remaining``: requests still allowed right now, after this one. ``reset_s``: seconds until the
    bucket is full again (0 when it already is). ``retry_after_s``: 0 when allowed, else seconds
    until the next request would be allowed.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float


class RateLimiter(Protocol):
    """Decides, per key, whether one more request is allowed at ``rate``, and records it if so."""

    # True when hit() waits on the network (the event loop must hand it to a thread).
    blocking: bool

    def hit(self, key: str, rate: Rate) -> Decision: ...

    def hit_at_once(self, key: str, rate: Rate) -> Decision | None:
        """hit(), when it can be decided without I/O (safe on the event loop); else None, and
        nothing was counted."""
        ...

    def close(self) -> None:
        """Let go of what the limiter holds (connections, a probing thread)."""


class RateLimiterUnavailable(RuntimeError):
    """The shared rate-limit store cannot be reached and the limiter is configured to fail closed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def bounded_key(key: str) -> str:
    """`key` itself when short, else its start and a 128-bit digest of all of it: two long keys
    that differ anywhere stay two buckets."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{key[:_KEPT_START]}#{digest}"


def wait_for_room(rate: Rate, decision: Decision) -> float:
    """Seconds from `decision` (of a key at `rate`) until one more request of the key would be
    allowed: 0 while the key has room, else when its TAT has come within the burst tolerance."""
    _, tolerance_us = _gcra_params(rate)
    return max(0, round(decision.reset_s * _US_PER_S) - tolerance_us) / _US_PER_S


def _gcra_params(rate: Rate) -> tuple[int, int]:
    """Emission interval and burst tolerance of ``rate``, in whole microseconds."""
    period_us = round(rate.period_s * _US_PER_S)
    interval_us = -(-period_us // rate.limit)  # ceil: never more permissive than the nominal rate
    return interval_us, interval_us * (rate.limit - 1)


def _decide(
    tat_us: int | None, now_us: int, interval_us: int, tolerance_us: int
) -> tuple[bool, int, int, int]:
    """One GCRA step for a key whose TAT is ``tat_us`` (None: never seen or expired).

    Returns ``(allowed, remaining, reset_us, retry_us)``. When allowed, the new TAT is
    ``now_us + reset_us`` and the caller stores it; when denied, the TAT must stay as it was.
    Mirrors the Lua script of :class:`RedisRateLimiter` step for step.
    """
    tat = now_us if tat_us is None else max(tat_us, now_us)
    if tat - now_us > tolerance_us:
        return False, 0, tat - now_us, tat - tolerance_us - now_us
    new_tat = tat + interval_us
    remaining = (tolerance_us - (new_tat - now_us)) // interval_us + 1
    return True, remaining, new_tat - now_us, 0


def _decision(rate: Rate, allowed: bool, remaining: int, reset_us: int, retry_us: int) -> Decision:
    return Decision(
        allowed=allowed,
        limit=rate.limit,
        remaining=max(0, remaining),
        reset_s=reset_us / _US_PER_S,
        retry_after_s=retry_us / _US_PER_S,
    )


class InProcessRateLimiter:
    """GCRA limiter held in this process's memory: the embedded default, thread-safe.

    Limits are per process: with several workers each enforces its own budget (use
    :class:`RedisRateLimiter` to share one). ``clock`` returns seconds and must not go backwards;
    it is injectable for tests. Keys are kept in the order they were last used; each hit
    forgets up to two of the least recently used whose bucket is full again, and, beyond
    ``max_keys``, the least recently used whatever its bucket (it starts again with a full
    one). So memory is bounded whatever is sent, a key in use is never the one forgotten, and
    every hit does a bounded amount of work (no sweep holds the event loop).
    """

    blocking = False

    _FORGET_PER_HIT = 2  # > 1: the table shrinks faster than one new key per hit can grow it

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock = clock
        self._lock = threading.Lock()
        self._tats: OrderedDict[str, int] = OrderedDict()
        self._max_keys = max_keys

    def hit(self, key: str, rate: Rate) -> Decision:
        interval_us, tolerance_us = _gcra_params(rate)
        key = bounded_key(key)
        with self._lock:
            now_us = round(self._clock() * _US_PER_S)
            tats = self._tats
            tat_us = tats.get(key)
            allowed, remaining, reset_us, retry_us = _decide(tat_us, now_us, interval_us, tolerance_us)
            if allowed:
                tats[key] = now_us + reset_us
            if tat_us is not None or allowed:
                tats.move_to_end(key)  # a key held back is in use too: it stays
            # Forget the least recently used keys whose TAT has passed (they behave exactly
            # like keys never seen), and any beyond max_keys.
            for _ in range(self._FORGET_PER_HIT):
                oldest = next(iter(tats))
                if tats[oldest] > now_us and len(tats) <= self._max_keys:
                    break
                del tats[oldest]
                if not tats:
                    break
        return _decision(rate, allowed, remaining, reset_us, retry_us)

    hit_at_once = hit

    def close(self) -> None:
        """Nothing to let go of: the keys are in this process's memory."""


# KEYS[1]: the key. ARGV[1]: emission interval (µs). ARGV[2]: burst tolerance (µs). ARGV[3]:
# requests wanted at once (a lease, see ratelimit_leases; 1 for a plain hit), of which as many
# as the bucket holds are granted, and at least one, or none.
# Returns {allowed (0|1), remaining, reset (µs), retry after (µs), granted}: integers only, since a Lua
# number returned to Redis is truncated to an integer. Microseconds since the epoch (~1.7e15) are
# exact in Lua's doubles (< 2^53); the TAT is written with %d so no digit is lost to %.14g.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end
if tat - now > tolerance then
  return {0, 0, tat - now, tat - tolerance - now, 0}
end
local granted = math.min(tonumber(ARGV[3]), math.floor((tolerance - (tat - now)) / interval) + 1)
local new_tat = tat + interval * granted
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
local remaining = math.floor((tolerance - (new_tat - now)) / interval) + 1
return {1, remaining, new_tat - now, 0, granted}
"""


# Errors that say Redis is unreachable (refused, reset, timed out, loading): they open the
# breaker. Any other RedisError is about one call, and fails that call only.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
# The Retry-After of a refusal while no breaker says when Redis will be asked again.
_RETRY_AFTER_S = 1.0


class RedisRateLimiter:
    """GCRA limiter shared through Redis: one atomic Lua script per hit, on the server's clock.

    Each key (``prefix + key``) holds its TAT in microseconds of Redis server time, written only
    when a request is allowed, with an expiry at the instant the bucket is full again. When Redis
    cannot decide a hit (any ``RedisError`` or ``OSError``, or the ``breaker`` open) the limiter
    calls ``on_unavailable(error)`` so the caller can log or count it, and either lets the
    request through (``fail_open=True``) or raises :class:`RateLimiterUnavailable`. Give
    ``client`` short socket timeouts and no retries: redis-py's default retry policy backs off
    for seconds on a refused connection. With a ``breaker``, errors that say Redis is
    unreachable open it; while it is open no hit waits on Redis (each is decided at once, as
    above) and the breaker's probe finds Redis back.
    """

    blocking = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "a2a:rl:",
        fail_open: bool = True,
        on_unavailable: Callable[[Exception], None] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._fail_open = fail_open
        self._on_unavailable = on_unavailable
        self._breaker = breaker
        self._script = client.register_script(_GCRA_LUA)

    def hit(self, key: str, rate: Rate) -> Decision:
        return self.lease(key, rate, 1)[0]

    def hit_at_once(self, key: str, rate: Rate) -> Decision | None:
        return None  # every hit is a round trip

    def lease(self, key: str, rate: Rate, wanted: int) -> tuple[Decision, int]:
        """Up to `wanted` requests of `key` at once (as many as its bucket holds): the decision
        on the first, and how many were granted in all (0: refused, or undecided)."""
        interval_us, tolerance_us = _gcra_params(rate)
        breaker = self._breaker
        try:
            if breaker is not None:
                breaker.admit()
            reply = self._script(keys=[self._prefix + bounded_key(key)], args=[interval_us, tolerance_us, wanted])
        except CircuitOpen as refused:
            return self._undecided(rate, refused, refused.retry_after_s), 0
        except UNREACHABLE as error:
            if breaker is not None:
                breaker.failed()
            return self._undecided(rate, error, _RETRY_AFTER_S), 0
        except redis.exceptions.RedisError as error:
            return self._undecided(rate, error, _RETRY_AFTER_S), 0
        if breaker is not None:
            breaker.succeeded()
        allowed, remaining, reset_us, retry_us, granted = (int(v) for v in reply)
        return _decision(rate, bool(allowed), remaining, reset_us, retry_us), granted

    def close(self) -> None:
        """Stop the breaker's probing and close the connections."""
        if self._breaker is not None:
            self._breaker.close()
        self._client.close()

    def _undecided(self, rate: Rate, error: Exception, retry_after_s: float) -> Decision:
        """A hit Redis could not decide: let through, or refused (RateLimiterUnavailable)."""
        if self._on_unavailable is not None:
            self._on_unavailable(error)
        if not self._fail_open:
            raise RateLimiterUnavailable(f"rate limiter store unavailable: {error}", retry_after_s) from error
        return Decision(allowed=True, limit=rate.limit, remaining=rate.limit, reset_s=0.0, retry_after_s=0.0)
