"""Clients that keep sending goal commands and reads to a server, and what each one got."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.support import API, PROBLEM

GOALS: dict[str, Any] = {"goals": {"purpose_statement": "Stay up", "primary_objectives": ["Alpha"]}}


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent and answered (monotonic seconds), and the answer."""

    kind: str  # "write" or "read"
    agent: str
    started: float
    finished: float
    status: int | None  # None: no answer (refused, reset, or timed out)
    error: str | None = None
    retry_after: str | None = None
    problem: dict[str, Any] | None = None
    version: int | None = None
    position: int | None = None

    @property
    def unavailable(self) -> bool:
        """A 503 problem with Retry-After: what a failing dependency must answer."""
        return (
            self.status == 503
            and self.retry_after is not None
            and self.problem is not None
            and self.problem.get("status") == 503
        )


def set_goals(url: str, headers: dict[str, str], agents: Sequence[str]) -> None:
    with httpx.Client(base_url=f"{url}{API}", headers=headers, timeout=30) as client:
        for agent in agents:
            answer = client.post(f"/agents/{agent}", json=GOALS)
            assert answer.status_code == 201, answer.text


class Traffic:
    """`clients` threads, each owning one agent, alternating progress writes with reads of
    the agent (`writes_only`: writes only), `pause_s` apart, each request with `timeout_s`.
    `url` may be changed while they run (a server restarted on another port)."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        agents: Sequence[str],
        *,
        pause_s: float,
        timeout_s: float,
        writes_only: bool = False,
    ) -> None:
        self.url = url
        self._headers = headers
        self._pause_s = pause_s
        self._timeout_s = timeout_s
        self._writes_only = writes_only
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self._threads = [threading.Thread(target=self._client, args=(a,), daemon=True) for a in agents]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(self._timeout_s + 10)
        assert not any(t.is_alive() for t in self._threads), "a client did not stop"

    def since(self, instant: float) -> list[Outcome]:
        """The outcomes of requests sent at or after `instant`."""
        with self._lock:
            return [o for o in self.outcomes if o.started >= instant]

    def _client(self, agent: str) -> None:
        value = 0
        with httpx.Client(headers=self._headers, timeout=self._timeout_s) as client:
            while not self._halt.wait(self._pause_s):
                value = (value + 1) % 100
                write = self._writes_only or value % 2 == 0
                outcome = self._send(client, agent, value) if write else self._read(client, agent)
                with self._lock:
                    self.outcomes.append(outcome)

    def _send(self, client: httpx.Client, agent: str, value: int) -> Outcome:
        started = time.monotonic()
        try:
            answer = client.put(
                f"{self.url}{API}/agents/{agent}/progress", json={"objective_progress": {"alpha": value}}
            )
        except httpx.HTTPError as error:
            return Outcome("write", agent, started, time.monotonic(), None, error=repr(error))
        return _outcome("write", agent, started, answer)

    def _read(self, client: httpx.Client, agent: str) -> Outcome:
        started = time.monotonic()
        try:
            answer = client.get(f"{self.url}{API}/agents/{agent}")
        except httpx.HTTPError as error:
            return Outcome("read", agent, started, time.monotonic(), None, error=repr(error))
        return _outcome("read", agent, started, answer)


def _outcome(kind: str, agent: str, started: float, answer: httpx.Response) -> Outcome:
    finished = time.monotonic()
    problem = answer.json() if answer.headers.get("content-type", "").startswith(PROBLEM) else None
    body = answer.json() if answer.status_code == 200 and kind == "write" else {}
    return Outcome(
        kind,
        agent,
        started,
        finished,
        answer.status_code,
        retry_after=answer.headers.get("retry-after"),
        problem=problem,
        version=body.get("version"),
        position=body.get("position"),
    )
