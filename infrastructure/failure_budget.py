"""A budget of failures per key: only what failed is counted against the key, and whether the
key has spent its budget is known without asking the limiter again."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from infrastructure.ratelimit import Decision, Rate, RateLimiter, bounded_key, wait_for_room

__all__ = ["FailureBudget"]


class FailureBudget:
    """Failures per key at most at `rate`, counted in `limiter` (shared by the replicas when it
    is Redis's). The keys whose budget is spent are remembered in this process until a failure
    would be counted again, so asking costs a dictionary lookup, and only a failure costs a
    limiter call. At most `max_keys` are remembered, each under a bounded name, the oldest
    forgotten first: a forgotten key costs one failure more before it is remembered again."""

    def __init__(
        self,
        limiter: RateLimiter,
        rate: Rate,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self._limiter = limiter
        self._max_keys = max_keys
        self._clock = clock
        self._spent: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (room at, full at)
        self._lock = threading.Lock()

    def spent(self, key: str) -> Decision | None:
        """The refusal while `key` has spent its budget (its Retry-After is when it has room
        again), None while it has room."""
        now = self._clock()
        key = bounded_key(key)
        with self._lock:
            held = self._spent.get(key)
            if held is None:
                return None
            room_at, full_at = held
            if room_at <= now:
                del self._spent[key]
                return None
        return Decision(
            allowed=False,
            limit=self.rate.limit,
            remaining=0,
            reset_s=full_at - now,
            retry_after_s=room_at - now,
        )

    def failed(self, key: str) -> None:
        """Count one failure of `key` (a failure past the budget is refused by the limiter and
        leaves the count as it was); remember the key when its budget is spent."""
        decision = self._limiter.hit(key, self.rate)
        wait = wait_for_room(self.rate, decision)
        if wait <= 0:
            return
        now = self._clock()
        key = bounded_key(key)
        with self._lock:
            self._spent[key] = (now + wait, now + decision.reset_s)
            self._spent.move_to_end(key)
            if len(self._spent) > self._max_keys:
                self._spent.popitem(last=False)
