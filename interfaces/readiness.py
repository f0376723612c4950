"""Readiness: named checks of what a server needs to serve, run at once, each bounded in time.

A check returns when its part is ready and raises otherwise (NotReady names a state such as
"behind"; any other exception is "down"). A check still running at the deadline is "timeout":
a hung dependency never hangs the probe. A check whose own client timed out first (its socket
timeout is the same deadline, and either clock may fire first) is "timeout" too. Results are
states only, never volumes or errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

log = logging.getLogger(__name__)
UP = "up"
DOWN = "down"
TIMEOUT = "timeout"
Check = Callable[[], None]
Errors = tuple[type[BaseException], ...]


class NotReady(Exception):
    """A part that answers but is not fit to serve: `state` says how ("behind", "failed")."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


@dataclass(frozen=True)
class Readings:
    states: dict[str, str]
    # Parts whose state is shown but does not decide readiness: serving does not wait for them.
    advisory: frozenset[str] = frozenset()

    @property
    def ready(self) -> bool:
        return not self.not_ready

    @property
    def not_ready(self) -> list[str]:
        return [name for name, state in self.states.items() if state != UP and name not in self.advisory]


class Readiness:
    """Runs every check in parallel and waits at most `timeout_s` for all of them."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        timeout_s: float,
        advisory: frozenset[str] = frozenset(),
        timeout_errors: Errors = (TimeoutError,),
    ) -> None:
        """`timeout_errors`: what the checks' clients raise when they time out themselves."""
        self.checks = dict(checks)
        self.timeout_errors = timeout_errors
        self.timeout_s = timeout_s
        self.advisory = advisory
        # Room for a round of checks hung until their own client timeouts, and the next round.
        self._pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(self.checks)), thread_name_prefix="ready")

    def read(self) -> Readings:
        futures = {name: self._pool.submit(check) for name, check in self.checks.items()}
        wait(futures.values(), timeout=self.timeout_s)
        states = {name: _state(name, future, self.timeout_errors) for name, future in futures.items()}
        return Readings(states, self.advisory)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _state(name: str, future: Future[None], timeout_errors: Errors) -> str:
    if not future.done():
        future.cancel()
        return TIMEOUT
    error = future.exception()
    if error is None:
        return UP
    if isinstance(error, NotReady):
        return error.state
    if isinstance(error, timeout_errors):
        return TIMEOUT
    log.warning("readiness: %s is down (%s)", name, type(error).__name__)
    return DOWN
