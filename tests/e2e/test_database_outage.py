"""PostgreSQL stopped under load, for 45 s, several times: the server answers 503 with
Retry-After at once instead of hanging, keeps serving what needs no database, stays up, and
after each return writes succeed within seconds and the projections catch up by themselves.

The database is a private cluster this test stops (immediate mode, as a crash would) and
starts again on the same port; the bounds are generous for a loaded 2-core machine, and each
is far below what a hang would take.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial

import httpx
import psycopg
import pytest

from tests.conftest import Server
from tests.e2e.support import API, PROBLEM
from tests.e2e.traffic import Outcome, Traffic, set_goals
from tests.integration.support import wait_until
from tests.private_servers import PrivatePostgres

OUTAGE_S = 45.0
ROUNDS = 3
CLIENTS = 48  # more than the server's worker threads (40): a hang would block them all
# From the stop until every new request is refused at once (the breaker is open).
SETTLE_S = 5.0
# "At once" on a loaded 2-core machine; a request waiting on the database takes 30 s or more.
ANSWER_S = 3.0
# From the database's return until writes succeed again.
RECOVERY_S = 5.0
# From the database's return until every read model holds what the log held then.
CATCH_UP_S = 60.0
EVENTS_TABLE = "a2a_events"  # the application's log, as eventsourcing names it
PUBLIC = (
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/openapi.json",
    "/docs",
    "/metrics",
)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _written_since(traffic: Traffic, instant: float) -> bool:
    return any(o.kind == "write" and o.status == 200 for o in traffic.since(instant))


def _wrong(outcomes: list[Outcome]) -> list[Outcome]:
    """Those that got no answer, or an answer that is neither a success nor a 503 problem."""
    return [o for o in outcomes if not (o.status == 200 or o.unavailable)]


def _one_value(url: str, sql: str) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _caught_up(url: str, server: Server) -> Callable[[], bool]:
    """Every read model has reached what the log holds now, and health says so: read with
    plain SQL, one connection a check."""
    target = _one_value(url, f"SELECT max(notification_id) FROM {EVENTS_TABLE}")

    def check() -> bool:
        try:
            reached = _one_value(url, "SELECT min(position) FROM projection_tracking")
        except psycopg.OperationalError:  # the server is still coming back
            return False
        health = httpx.get(f"{server.url}{API}/health", timeout=ANSWER_S)
        return reached >= target and health.status_code == 200

    return check


def _during_outage(server: Server, credentials: tuple[str, str]) -> None:
    """Health answers 503 at once, the token endpoint too, and the public documents stay up."""
    health = httpx.get(f"{server.url}{API}/health", timeout=ANSWER_S)
    assert health.status_code == 503, health.text
    assert health.headers.get("retry-after")
    assert health.json()["database"] == "down"
    token = httpx.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=credentials,
        timeout=ANSWER_S,
    )
    assert token.status_code == 503, token.text
    assert token.headers["content-type"].startswith(PROBLEM)
    assert token.headers.get("retry-after")
    for path in PUBLIC:
        answer = httpx.get(f"{server.url}{path}", timeout=ANSWER_S, follow_redirects=True)
        assert answer.status_code == 200, path


@pytest.mark.postgres
def test_database_outages_under_load_fail_fast_and_recover_by_themselves(
    postgres: PrivatePostgres, start_server: Callable[..., Server], tenant: str
) -> None:
    url = postgres.create_database("a2a")
    # one client sends the whole load: its limits must not be what refuses it
    server = start_server(
        DATABASE_URL=url, RATE_LIMIT_READS="100000/minute", RATE_LIMIT_WRITES="100000/minute"
    )
    headers = server.auth_headers(tenant)
    credentials = server.client(tenant)
    agents = [f"agent-{i:02d}" for i in range(CLIENTS)]
    set_goals(server.url, headers, agents)

    traffic = Traffic(server.url, headers, agents, pause_s=0.1, timeout_s=10)
    traffic.start()
    caught_up: list[bool] = []
    try:
        for _ in range(ROUNDS):
            began = time.monotonic()
            wait_until(partial(_written_since, traffic, began), RECOVERY_S, "writes before the outage")

            stopped = time.monotonic()
            postgres.stop()
            time.sleep(SETTLE_S)
            _during_outage(server, credentials)
            time.sleep(max(0.0, stopped + OUTAGE_S - time.monotonic()))
            _during_outage(server, credentials)
            refused = traffic.since(stopped + SETTLE_S)
            assert refused, "no request was sent during the outage"
            slow = [o for o in refused if not o.unavailable or o.finished - o.started > ANSWER_S]
            assert not slow, f"{len(slow)} of {len(refused)} not refused at once, e.g. {slow[:3]}"
            assert server.proc.poll() is None, "the server died during the outage"

            postgres.start()
            returned = time.monotonic()
            wait_until(partial(_written_since, traffic, returned), RECOVERY_S, "writes after the return")
            wrong = _wrong(traffic.since(stopped))
            assert not wrong, f"{len(wrong)} requests neither succeeded nor got a 503, e.g. {wrong[:3]}"
            try:
                wait_until(_caught_up(url, server), CATCH_UP_S, "the projections", every_s=0.5)
                caught_up.append(True)
            except AssertionError:
                caught_up.append(False)
    finally:
        traffic.stop()
    assert caught_up == [True] * ROUNDS, f"projections caught up after each return: {caught_up}"
