"""Redis, the shared rate-limit store, away under load, twice: killed (connections refused),
then hung (connections open, nothing answered, as a host that hangs). A server with
RATE_LIMIT_FAIL_OPEN=true lets requests through (and counts each time it could not ask
Redis), one with false answers 503 with Retry-After; both at once, not after the limiter's
timeout, and each logs the outage one line a window, not a line a request. Once Redis is
back both limit again by themselves. Both servers use one private redis-server, so one
outage shows both."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from infrastructure.security_log import REPEAT_WINDOW_S
from interfaces.wiring.shared_redis import REDIS_TIMEOUT_S
from tests.conftest import Server
from tests.e2e.support import API, PROBLEM
from tests.e2e.traffic import Traffic, set_goals
from tests.integration.support import wait_until
from tests.private_servers import PrivateRedis

OUTAGE_S = 45.0
OUTAGES = ("killed", "hung")
CLIENTS = 8
READS_PER_MINUTE = 5  # the reads limit a burst goes past
SETTLE_S = 1.0  # from the stop until the servers have seen it
ANSWER_S = 3.0  # "at once" on a loaded 2-core machine
RECOVERY_S = 5.0
TIMED_READS = 20  # one after the other: each waiting the limiter's timeout would take 10 s
UNAVAILABLE_COUNT = re.compile(r'^a2a_security_events_total\{kind="rate_limiter_unavailable"\} (\S+)$', re.M)


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _start(start_server: Callable[..., Server], tmp_path: Path, redis_url: str, fail_open: bool) -> Server:
    return start_server(
        DATA_DIR=str(tmp_path / f"fail-open-{fail_open}"),
        REDIS_URL=redis_url,
        RATE_LIMIT_FAIL_OPEN=str(fail_open).lower(),
        RATE_LIMIT_READS=f"{READS_PER_MINUTE}/minute",
        RATE_LIMIT_WRITES="100000/minute",  # the load is writes: never what is refused
    )


def _burst(server: Server, headers: dict[str, str]) -> list[httpx.Response]:
    """More reads at once than the limit allows."""
    with httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=ANSWER_S) as client:
        return [client.get("/agents/agent-00") for _ in range(READS_PER_MINUTE + 2)]


def _limited(server: Server, headers: dict[str, str]) -> bool:
    return any(r.status_code == 429 for r in _burst(server, headers))


def _unavailable_count(server: Server) -> float:
    metrics = httpx.get(f"{server.url}/metrics/", timeout=ANSWER_S).text
    found = UNAVAILABLE_COUNT.search(metrics)
    return float(found.group(1)) if found else 0.0


def _refused_at_once(answer: httpx.Response) -> bool:
    return (
        answer.status_code == 503
        and bool(answer.headers.get("retry-after"))
        and answer.headers["content-type"].startswith(PROBLEM)
    )


def _answered_at_once(server: Server, headers: dict[str, str], status: int) -> None:
    """Reads one after the other, all answered `status`, and fewer than half as slowly as if
    each waited the limiter's timeout for Redis (a bound every such wait would cross)."""
    with httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=ANSWER_S) as client:
        started = time.monotonic()
        statuses = [client.get("/agents/agent-00").status_code for _ in range(TIMED_READS)]
        took = time.monotonic() - started
    assert statuses == [status] * TIMED_READS
    assert took < TIMED_READS * REDIS_TIMEOUT_S / 2, f"{TIMED_READS} reads took {took:.1f}s"


def _during_outage(
    opened: Server, closed: Server, headers: dict[Server, dict[str, str]], counted: float
) -> float:
    """Fail-open lets a burst past the limit and counts it; fail-closed refuses; both at once."""
    assert all(r.status_code == 200 for r in _burst(opened, headers[opened]))
    now_counted = _unavailable_count(opened)
    assert now_counted >= counted + READS_PER_MINUTE + 2
    assert all(_refused_at_once(r) for r in _burst(closed, headers[closed]))
    _answered_at_once(opened, headers[opened], 200)
    _answered_at_once(closed, headers[closed], 503)
    return _unavailable_count(opened)


def _limiter_lines(server: Server, since: int) -> list[str]:
    """The lines the server logged about the limiter's store since offset `since` of its log."""
    text = server.log_text()[since:]
    return [line for line in text.splitlines() if "rate_limiter_unavailable" in line or "RateLimiter" in line]


def _logged_once_a_window(server: Server, since: int, requests: int) -> None:
    """The outage is told a line a window with the count it stands for, not a line a request."""
    lines = _limiter_lines(server, since)
    assert lines, "the outage was not logged"
    assert len(lines) <= OUTAGE_S / REPEAT_WINDOW_S + 2, f"{len(lines)} lines for {requests} requests"
    assert requests > 10 * len(lines)
    assert any('"repeated": ' in line for line in lines)


def test_redis_outages_fail_open_or_closed_as_configured_and_limits_come_back(
    redis_server: PrivateRedis, start_server: Callable[..., Server], tenant: str, tmp_path: Path
) -> None:
    opened = _start(start_server, tmp_path, redis_server.url, fail_open=True)
    closed = _start(start_server, tmp_path, redis_server.url, fail_open=False)
    headers = {server: server.auth_headers(tenant) for server in (opened, closed)}
    agents = [f"agent-{i:02d}" for i in range(CLIENTS)]
    loads: dict[Server, Traffic] = {}
    for server in (opened, closed):
        set_goals(server.url, headers[server], agents)
        loads[server] = Traffic(
            server.url, headers[server], agents, pause_s=0.05, timeout_s=10, writes_only=True
        )
        loads[server].start()
    try:
        for outage in OUTAGES:
            assert _limited(opened, headers[opened]) and _limited(closed, headers[closed])
            counted = _unavailable_count(opened)
            logged = {server: len(server.log_text()) for server in (opened, closed)}

            stopped = time.monotonic()
            if outage == "killed":
                redis_server.stop()
            else:
                redis_server.pause()
            time.sleep(SETTLE_S)
            counted = _during_outage(opened, closed, headers, counted)
            time.sleep(max(0.0, stopped + OUTAGE_S - time.monotonic()))
            _during_outage(opened, closed, headers, counted)
            let_through = loads[opened].since(stopped + SETTLE_S)
            refused = loads[closed].since(stopped + SETTLE_S)
            assert let_through and all(o.status == 200 for o in let_through)
            assert refused and all(o.unavailable and o.finished - o.started <= ANSWER_S for o in refused)
            _logged_once_a_window(opened, logged[opened], len(let_through))
            _logged_once_a_window(closed, logged[closed], len(refused))

            if outage == "killed":
                redis_server.start()
            else:
                redis_server.resume()
            for server in (opened, closed):
                wait_until(partial(_limited, server, headers[server]), RECOVERY_S, "limits after the return")
                assert server.proc.poll() is None
    finally:
        for load in loads.values():
            load.stop()
    assert not [o for load in loads.values() for o in load.outcomes if o.status is None], "a request hung"
