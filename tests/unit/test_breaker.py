"""The circuit breaker's states: closed, open (refusing at once, probing), half-open."""

from __future__ import annotations

import threading

import pytest

from infrastructure.breaker import CircuitBreaker, CircuitOpen
from tests.integration.support import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """What the probe reaches: down until told otherwise."""

    def __init__(self) -> None:
        self.up = False
        self.probes = 0

    def probe(self) -> None:
        self.probes += 1
        if not self.up:
            raise ConnectionRefusedError("down")


def breaker(dependency: Dependency, clock: Clock | None = None, failures: int = 3) -> CircuitBreaker:
    return CircuitBreaker(
        "database",
        dependency.probe,
        failures_to_open=failures,
        probe_every_s=0.5,
        probe_in_background=False,
        clock=clock or Clock(),
    )


def test_failures_in_a_row_open_it_and_then_calls_are_refused_at_once() -> None:
    circuit = breaker(Dependency())
    circuit.admit()
    circuit.failed()
    circuit.failed()
    assert circuit.state == "closed"
    circuit.admit()
    circuit.failed()
    assert circuit.state == "open"
    with pytest.raises(CircuitOpen):
        circuit.admit()


def test_a_success_between_failures_starts_the_count_again() -> None:
    circuit = breaker(Dependency())
    for _ in range(5):
        circuit.failed()
        circuit.failed()
        circuit.succeeded()
    assert circuit.state == "closed"


def test_it_stays_open_until_a_probe_answers_then_a_success_closes_it() -> None:
    dependency = Dependency()
    circuit = breaker(dependency, failures=1)
    circuit.failed()
    assert not circuit.probe()
    assert circuit.state == "open"
    circuit.succeeded()  # a call that began before it opened proves nothing
    assert circuit.state == "open"

    dependency.up = True
    assert circuit.probe()
    assert circuit.state == "half-open"
    circuit.admit()  # calls pass again
    circuit.succeeded()
    assert circuit.state == "closed"
    assert dependency.probes == 2


def test_one_failure_while_half_open_opens_it_again() -> None:
    dependency = Dependency()
    circuit = breaker(dependency, failures=3)
    for _ in range(3):
        circuit.failed()
    dependency.up = True
    circuit.probe()
    assert circuit.state == "half-open"
    circuit.failed()
    assert circuit.state == "open"
    with pytest.raises(CircuitOpen):
        circuit.admit()


def test_retry_after_is_the_time_until_the_next_probe() -> None:
    clock = Clock()
    circuit = breaker(Dependency(), clock, failures=1)
    assert circuit.retry_after_s() == 0.0
    circuit.failed()
    assert circuit.retry_after_s() == pytest.approx(0.5)
    clock.now += 0.3
    with pytest.raises(CircuitOpen) as refused:
        circuit.admit()
    assert refused.value.retry_after_s == pytest.approx(0.2)
    circuit.probe()  # fails: the next one is a full interval away
    assert circuit.retry_after_s() == pytest.approx(0.5)


def test_listeners_hear_every_opening() -> None:
    dependency = Dependency()
    circuit = breaker(dependency, failures=1)
    opened: list[str] = []
    circuit.on_open(lambda: opened.append(circuit.state))
    circuit.failed()
    circuit.failed()  # already open: not again
    dependency.up = True
    circuit.probe()
    circuit.failed()
    assert opened == ["open", "open"]


def test_in_the_background_it_probes_while_open_and_stops_once_answered() -> None:
    dependency = Dependency()
    circuit = CircuitBreaker("database", dependency.probe, failures_to_open=1, probe_every_s=0.01)
    try:
        circuit.failed()
        wait_until(lambda: dependency.probes >= 3, 10, "probes while it is down")
        assert circuit.state == "open"
        dependency.up = True
        wait_until(lambda: circuit.state == "half-open", 10, "a probe to find it back")
        probes = dependency.probes
        threading.Event().wait(0.1)
        assert dependency.probes == probes  # no probing while it is not open

        circuit.failed()  # open again: probing starts again
        dependency.up = False
        wait_until(lambda: dependency.probes >= probes + 3, 10, "probes after it opened again")
    finally:
        circuit.close()
