"""A circuit breaker: refuse at once, instead of waiting, while a dependency is known to be down."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import Gauge

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half-open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half-open": 1, "open": 2}
CIRCUIT_STATE = Gauge(
    "a2a_circuit_state", "Circuit breakers: 0 closed, 1 half-open (probe answered), 2 open.", ["dependency"],
    multiprocess_mode="max",  # several processes: the worst state any of them sees
)


class CircuitOpen(Exception):
    """Refused without trying: the dependency is known to be down."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"{name} is unavailable; retry in {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Closed, calls pass, and `failures_to_open` failures in a row open it. Open, every call
    is refused at once (CircuitOpen) while `probe` runs every `probe_every_s`; the first probe
    that succeeds half-opens it. Half-open, calls pass again: the first success closes it, the
    first failure opens it again.

    Callers say `admit()` before they use the dependency, then `succeeded()` or `failed()`.
    Only failures that mean "unreachable" should be reported, not errors of one request.
    With `probe_in_background`, a thread probes while the breaker is open; without, whoever
    holds it calls `probe()`.
    """

    def __init__(
        self,
        name: str,
        probe: Callable[[], object],
        *,
        failures_to_open: int = 3,
        probe_every_s: float = 0.5,
        probe_in_background: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._probe = probe
        self._failures_to_open = failures_to_open
        self._probe_every_s = probe_every_s
        self._background = probe_in_background
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._next_probe_at = 0.0
        self._probing = False
        self._stopping = threading.Event()
        self._on_open: list[Callable[[], None]] = []
        CIRCUIT_STATE.labels(dependency=name).set(STATE_VALUES["closed"])

    @property
    def state(self) -> State:
        return self._state

    def on_open(self, listener: Callable[[], None]) -> None:
        """Call `listener` each time the breaker opens (to drop connections that are now stale)."""
        self._on_open.append(listener)

    def admit(self) -> None:
        """Raise CircuitOpen while open; return at once otherwise."""
        if self._state == "open":
            raise CircuitOpen(self.name, self.retry_after_s())

    def retry_after_s(self) -> float:
        """Seconds until the next probe may find the dependency back (0 unless open)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self._next_probe_at - self._clock())

    def succeeded(self) -> None:
        if self._state == "closed" and not self._failures:
            return  # every returned connection says this: nothing to reset, no lock to take
        with self._lock:
            if self._state == "open":
                return  # an answer from before it opened says nothing about now
            self._failures = 0
            if self._state == "half-open":
                self._set("closed")
                log.info("%s is back: circuit closed", self.name)

    def failed(self) -> None:
        with self._lock:
            if self._state == "open":
                return
            self._failures += 1
            if self._state == "closed" and self._failures < self._failures_to_open:
                return
            self._open()
        for listener in self._on_open:
            listener()

    def probe(self) -> bool:
        """Probe once if open: half-open when the dependency answers. True when the breaker is
        no longer open."""
        with self._lock:
            if self._state != "open":
                return True
            self._next_probe_at = self._clock() + self._probe_every_s
        try:
            self._probe()
        except Exception as error:
            log.debug("%s probe failed: %s", self.name, error)
            return False
        with self._lock:
            if self._state == "open":
                self._set("half-open")
                log.info("%s answers again: circuit half-open", self.name)
            return True

    def close(self) -> None:
        """Stop probing (the process is stopping)."""
        self._stopping.set()

    def _open(self) -> None:
        """Under the lock: open, and make sure something probes."""
        self._set("open")
        self._failures = 0
        self._next_probe_at = self._clock() + self._probe_every_s
        log.warning("%s unavailable: circuit open, calls refused until a probe answers", self.name)
        if self._background and not self._probing:
            self._probing = True
            threading.Thread(target=self._probe_while_open, name=f"probe-{self.name}", daemon=True).start()

    def _probe_while_open(self) -> None:
        while not self._stopping.wait(self._probe_every_s):
            self.probe()
            with self._lock:
                if self._state != "open":
                    self._probing = False  # decided under the lock: an open after this starts a new one
                    return
        with self._lock:
            self._probing = False

    def _set(self, state: State) -> None:
        self._state = state
        CIRCUIT_STATE.labels(dependency=self.name).set(STATE_VALUES[state])
