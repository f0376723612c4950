"""Rate limits shared through Redis without a round trip per request: each process takes a
client's requests from Redis a few at a time (a lease) and spends them locally.

A lease is granted by the same GCRA script as a single hit, debited in Redis before any of it
is spent, so the shared bound holds up to what sits in leases: in any window a key gets at most
the GCRA bound plus one lease per process, and a lease is at most 2% of its limit (never more
than MAX_LEASE). Leases start at one request and double while they are spent within LEASE_TTL_S
(a busy client), and halve when one expires unspent (a quiet one, whose requests stay exact):
what expires unspent was counted but never served, so a client near its limit may be refused
up to a lease early. A refusal is always decided by Redis, with its exact Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from infrastructure.ratelimit import Decision, Rate, RedisRateLimiter, bounded_key

LEASE_TTL_S = 1.0
LEASE_SHARE = 50  # a lease is at most 1/50 of the limit
MAX_LEASE = 100
MAX_KEYS = 10_000


@dataclass
class _Lease:
    left: int  # requests granted and not spent yet
    size: int  # what the last lease asked for
    until: float


class LeasedRateLimiter:
    """A RedisRateLimiter whose hits are mostly decided in this process (see the module doc)."""

    blocking = True

    def __init__(
        self, shared: RedisRateLimiter, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self._shared = shared
        self._clock = clock
        self._max_keys = max_keys
        self._leases: OrderedDict[tuple[str, Rate], _Lease] = OrderedDict()
        self._lock = threading.Lock()

    def hit_at_once(self, key: str, rate: Rate) -> Decision | None:
        with self._lock:
            lease = self._leases.get((bounded_key(key), rate))
            if lease is None or lease.left <= 0 or lease.until <= self._clock():
                return None
            lease.left -= 1
        return Decision(allowed=True, limit=rate.limit, remaining=lease.left, reset_s=0.0, retry_after_s=0.0)

    def hit(self, key: str, rate: Rate) -> Decision:
        decided = self.hit_at_once(key, rate)
        if decided is not None:
            return decided
        slot = (bounded_key(key), rate)
        with self._lock:
            last = self._leases.get(slot)
        size = self._next_size(last, rate, self._clock())
        decision, granted = self._shared.lease(key, rate, size)
        if granted <= 0:
            return decision  # a refusal leaves what other threads leased meanwhile alone
        with self._lock:
            now = self._clock()
            current = self._leases.get(slot)
            if current is not None and current.left > 0 and current.until > now:
                # Threads that missed at once each took a lease: pooled, none of it is lost.
                current.left += granted - 1
                current.size = max(current.size, size)
                current.until = now + LEASE_TTL_S
            else:
                self._leases[slot] = _Lease(granted - 1, size, now + LEASE_TTL_S)
            self._leases.move_to_end(slot)
            while len(self._leases) > self._max_keys:
                self._leases.popitem(last=False)
        return decision

    def _next_size(self, last: _Lease | None, rate: Rate, now: float) -> int:
        most = max(1, min(MAX_LEASE, rate.limit // LEASE_SHARE))
        if last is None:
            return 1
        busy = last.left <= 0 and now < last.until  # spent before it expired
        return max(1, min(most, last.size * 2 if busy else last.size // 2))

    def close(self) -> None:
        self._shared.close()
