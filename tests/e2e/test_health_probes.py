"""Liveness and readiness probes against real dependencies that this test stops: Redis (the
rate-limit store and the job broker) killed and hung, PostgreSQL stopped, read models left
behind. `/health/ready` answers 503 at once naming what is not ready, `/health/live` stays
200, and readiness comes back by itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.support import PROBLEM
from tests.e2e.traffic import set_goals
from tests.integration.support import wait_until
from tests.private_servers import PrivatePostgres, PrivateRedis

# "At once" on a loaded 2-core machine; a probe waiting on a hung dependency would not answer.
ANSWER_S = 5.0
RECOVERY_S = 20.0


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _ready(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/health/ready", timeout=ANSWER_S)


def _alive(server: Server) -> bool:
    answer = httpx.get(f"{server.url}/health/live", timeout=ANSWER_S)
    return answer.status_code == 200 and answer.json() == {"status": "alive"}


def _not_ready(answer: httpx.Response, **states: str) -> bool:
    """A 503 problem naming each of `states` with that state."""
    if answer.status_code != 503:
        return False
    body = answer.json()
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.headers["retry-after"]
    assert body["type"] == "/problems/not-ready"
    return all(
        body["checks"].get(name) == state and f"{name} ({state})" in body["detail"]
        for name, state in states.items()
    )


def test_redis_killed_then_hung_is_named_and_readiness_returns(
    start_server: Callable[..., Server], redis_server: PrivateRedis, tmp_path: Path
) -> None:
    server = start_server(
        REDIS_URL=redis_server.url, BROKER_URL=redis_server.url, DATA_DIR=str(tmp_path / "d")
    )
    answer = _ready(server)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ready",
        "checks": {"database": "up", "projections": "up", "redis": "up", "broker": "up", "search": "up"},
    }

    redis_server.stop()
    answer = _ready(server)
    assert _not_ready(answer, redis="down", broker="down"), answer.text
    assert answer.json()["checks"]["database"] == "up"
    assert _alive(server)

    redis_server.start()
    wait_until(lambda: _ready(server).status_code == 200, RECOVERY_S, "ready again after Redis returned", 0.2)

    redis_server.pause()
    try:
        answer = _ready(server)
        assert _not_ready(answer, redis="timeout", broker="timeout"), answer.text
        assert _alive(server)
    finally:
        redis_server.resume()
    wait_until(lambda: _ready(server).status_code == 200, RECOVERY_S, "ready again after Redis answered", 0.2)


def test_postgres_stopped_is_named_and_readiness_returns(
    start_server: Callable[..., Server], postgres: PrivatePostgres
) -> None:
    server = start_server(DATABASE_URL=postgres.create_database("probes"))
    assert _ready(server).status_code == 200

    postgres.stop()
    answer = _ready(server)
    assert _not_ready(answer, database=answer.json()["checks"]["database"]), answer.text
    assert answer.json()["checks"]["database"] in {"down", "timeout"}
    assert _alive(server)

    postgres.start()
    wait_until(
        lambda: _ready(server).status_code == 200, RECOVERY_S, "ready again after PostgreSQL returned", 0.2
    )


def test_read_models_behind_are_named_and_volumes_are_not_told(
    start_server: Callable[..., Server], postgres: PrivatePostgres, tenant: str
) -> None:
    """No projector runs: once the oldest unapplied event is older than READY_MAX_LAG_S the
    server is not ready. RabbitMQ is the broker here (its check is a connection)."""
    server = start_server(
        DATABASE_URL=postgres.create_database("behind"),
        RUN_PROJECTIONS_IN_PROCESS="false",
        READY_MAX_LAG_S="1",
        BROKER_URL=os.environ["TEST_BROKER_AMQP_URL"],
        REDIS_URL=os.environ["TEST_REDIS_URL"],
    )
    first = _ready(server)
    assert first.status_code == 200, first.text
    assert first.json()["checks"]["broker"] == "up"
    set_goals(server.url, server.auth_headers(tenant), ["behind-1"])
    wait_until(
        lambda: _not_ready(_ready(server), projections="behind"), RECOVERY_S, "projections behind", 0.2
    )
    body = _ready(server).json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "request_id", "checks"}
    assert set(body["checks"].values()) <= {"up", "behind"}
    assert _alive(server)
