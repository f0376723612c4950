"""Health tells the truth about the projection runner, in the server's process or in a
projector of its own (`a2a-goals project`, as deployed): behind the log and not advancing
(another session holds the tracking rows, so it can commit nothing) is a 503 that says which
read models do not advance, and once the runner goes on, by itself, health is 200 again. A
runner stuck like that does not hold up SIGTERM either; on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import ROOT, Server
from tests.e2e.support import API, login, ok
from tests.integration.support import wait_until

GOALS = {"goals": {"purpose_statement": "Answer every ticket", "primary_objectives": ["Speed"]}}


# A runner is not advancing once it commits nothing for a second; it pipelines pages of one
# event (several are in flight behind one that cannot commit).
STALLS_FAST = {"PROJECTION_STALL_S": "1", "PROJECTION_POLL_S": "0.1", "PROJECTION_PAGE_SIZE": "1"}


@pytest.fixture
def server(store_kind: str, start_server: Callable[..., Server], request: pytest.FixtureRequest) -> Server:
    """A server whose runner is in its own process."""
    env = dict(STALLS_FAST)
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    return start_server(**env)


@pytest.fixture
def external(
    store_kind: str, start_server: Callable[..., Server], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Server]:
    """A server that runs no projections, and `a2a-goals project` on its store."""
    env = {**STALLS_FAST, "RUN_PROJECTIONS_IN_PROCESS": "false"}
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    server = start_server(**env)
    with (tmp_path / "projector.log").open("wb") as log:
        projector = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "project"],
            cwd=ROOT,
            env={**os.environ, **server.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield server
        finally:
            projector.terminate()
            try:
                projector.wait(15)
            except subprocess.TimeoutExpired:
                projector.kill()
                projector.wait()


@contextmanager
def tracking_rows_held(server: Server) -> Iterator[None]:
    """Hold the projection_tracking rows from another session: no runner commits a page."""
    if "DATABASE_URL" in server.env:
        with psycopg.connect(server.env["DATABASE_URL"]) as conn:
            conn.execute("SELECT name FROM projection_tracking FOR UPDATE")
            yield
            conn.rollback()
        return
    conn = sqlite3.connect(Path(server.env["DATA_DIR"]) / "read_models.sqlite", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _health(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}{API}/health", timeout=30)


def _caught_up(server: Server) -> bool:
    answer = _health(server)
    return answer.status_code == 200 and all(p["lag_s"] == 0 for p in answer.json()["projections"])


@contextmanager
def stalled(server: Server, tenant: str) -> Iterator[None]:
    """Goals applied; then, with the tracking rows held, progress the runner cannot apply,
    until health says so."""
    _, headers = login(server, tenant)
    with httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=30) as api:
        ok(api.post("/agents/stalled", json=GOALS), 201)
        wait_until(lambda: _caught_up(server), 30, "the runner to apply the goals")
        with tracking_rows_held(server):
            # one transaction of several events: pages of one are queued behind each other
            updates = [{"agent_id": "stalled", "objective_progress": {"speed": v}} for v in (10, 20, 30)]
            ok(api.post("/progress:batch", json={"updates": updates}))
            wait_until(lambda: _health(server).status_code == 503, 30, "health to tell the stalled runner")
            yield


def test_health_is_503_while_the_runner_is_not_advancing_and_200_once_it_goes_on(
    server: Server, tenant: str
) -> None:
    with stalled(server, tenant):
        answer = _health(server)
        assert answer.headers["Retry-After"]
        body = answer.json()
        assert body["status"] == "degraded"
        assert body["projector"]["advancing"] is False
        assert body["projector"]["state"] in {"running", "retrying"}  # waiting on the lock, or retrying
        assert all(p["state"] == "live" and p["lag_s"] > 0 for p in body["projections"])

    wait_until(lambda: _caught_up(server), 60, "the runner to go on once the rows are free")
    body = ok(_health(server))
    assert (body["status"], body["projector"]["state"], body["projector"]["advancing"]) == (
        "ok",
        "running",
        True,
    )


def test_health_is_503_while_a_projector_of_its_own_is_not_advancing_and_200_once_it_goes_on(
    external: Server, tenant: str
) -> None:
    with stalled(external, tenant):
        answer = _health(external)
        assert answer.headers["Retry-After"]
        body = answer.json()
        assert (body["status"], body["runner"], body["projector"]) == ("degraded", "external", None)
        assert all(p["state"] == "live" and p["lag_s"] > 1 for p in body["projections"])
        assert not any(p["advancing"] for p in body["projections"])

    wait_until(lambda: _caught_up(external), 60, "the projector to go on once the rows are free")
    body = ok(_health(external))
    assert body["status"] == "ok" and all(p["advancing"] for p in body["projections"])


def test_sigterm_stops_a_server_whose_runner_is_stuck(server: Server, tenant: str) -> None:
    with stalled(server, tenant):
        server.proc.terminate()
        try:
            code = server.proc.wait(30)  # a bound on a hang, not a timing check
        except Exception:
            server.proc.kill()
            raise
    assert code == -signal.SIGTERM  # uvicorn raises the signal again once it has shut down
