"""Readiness states: a part that does not answer in time is "timeout" whether the probe's
deadline or the client's own socket timeout fires first; errors are "down"; advisory parts are
shown but do not decide readiness."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from infrastructure.settings import Settings
from interfaces.readiness import NotReady, Readiness
from interfaces.wiring.readiness import TIMEOUT_ERRORS, _redis_ping


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_client_timing_out_before_the_deadline_reads_as_timeout(silent_listener: int) -> None:
    """The check the server builds (client timeout = READY_CHECK_TIMEOUT_S, no retries), given a
    longer deadline than its client's timeout so that the client's clock fires first."""
    settings = Settings(_env_file=None, READY_CHECK_TIMEOUT_S=0.2)
    readiness = Readiness(
        {"redis": _redis_ping(f"redis://127.0.0.1:{silent_listener}/0", settings)},
        timeout_s=5.0,
        timeout_errors=TIMEOUT_ERRORS,
    )
    try:
        started = time.monotonic()
        readings = readiness.read()
        assert readings.states == {"redis": "timeout"}
        # answered when the client gave up, once (no retries), not at the deadline
        assert time.monotonic() - started < 2.0
        assert not readings.ready
    finally:
        readiness.close()


def test_states_of_slow_refused_behind_and_advisory_parts() -> None:
    def slow() -> None:
        time.sleep(2)

    def refused() -> None:
        raise ConnectionRefusedError

    def behind() -> None:
        raise NotReady("behind")

    readiness = Readiness(
        {"slow": slow, "refused": refused, "behind": behind, "up": lambda: None, "chain": refused},
        timeout_s=0.3,
        advisory=frozenset({"chain"}),
    )
    try:
        readings = readiness.read()
        assert readings.states == {
            "slow": "timeout",
            "refused": "down",
            "behind": "behind",
            "up": "up",
            "chain": "down",
        }
        assert readings.not_ready == ["slow", "refused", "behind"]
    finally:
        readiness.close()


def test_only_advisory_parts_down_is_ready() -> None:
    def refused() -> None:
        raise ConnectionRefusedError

    readiness = Readiness(
        {"database": lambda: None, "chain": refused}, timeout_s=1.0, advisory=frozenset({"chain"})
    )
    try:
        readings = readiness.read()
        assert readings.ready and readings.states == {"database": "up", "chain": "down"}
    finally:
        readiness.close()
