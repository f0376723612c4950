"""The production shape on PostgreSQL: several API replicas on one database, and API
processes that leave the projections to a separate `a2a-goals project` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Server
from tests.e2e.support import ok

API = "/api/v1/goals"
GOALS: dict[str, Any] = {
    "goals": {"purpose_statement": "Cut idle cloud spend", "primary_objectives": ["Alpha"]}
}


def client(server: Server, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=30)


@pytest.fixture
def projector(pg_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`a2a-goals project` on the session's PostgreSQL database."""
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": pg_url, "DATA_DIR": str(tmp_path / "projector")}
    with (tmp_path / "projector.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "project"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_two_replicas_on_one_database_serve_each_others_writes(
    pg_url: str, start_server: Callable[..., Server], tenant: str
) -> None:
    first, second = start_server(DATABASE_URL=pg_url), start_server(DATABASE_URL=pg_url)
    # one token, issued by the first replica, is honoured by both
    headers = first.auth_headers(tenant)
    with client(first, headers) as one, client(second, headers) as two:
        created = ok(one.post("/agents/r1", json=GOALS), 201)
        assert ok(two.get("/agents/r1", params={"min_position": created["position"]}))["version"] == 2

        last = created
        for pct, api in ((10, two), (20, one), (30, two), (40, one)):
            last = ok(api.put("/agents/r1/progress", json={"objective_progress": {"alpha": pct}}))
        # an Idempotency-Key used on one replica is honoured by the other
        key = {"Idempotency-Key": "replicated-key"}
        keyed = ok(one.put("/agents/r1/progress", json={"objective_progress": {"alpha": 45}}, headers=key))
        again = ok(two.put("/agents/r1/progress", json={"objective_progress": {"alpha": 45}}, headers=key))
        assert again["replayed"] is True
        assert again["version"] == keyed["version"]

        wait = {"min_position": keyed["position"], "limit": 500}
        seen = [ok(api.get("/agents/r1/history", params=wait))["items"] for api in (one, two)]
        assert seen[0] == seen[1]
        positions = [e["position"] for e in seen[0]]
        assert len(positions) == len(set(positions))
        updates = [
            e["data"]["objective_progress"]["alpha"] for e in seen[0] if e["action"] == "progress_updated"
        ]
        assert updates == [10.0, 20.0, 30.0, 40.0, 45.0]
        assert last["version"] < keyed["version"]
        for api in (one, two):
            health = ok(api.get("/health"))
            assert {p["state"] for p in health["projections"]} == {"live"}


def test_api_without_in_process_projections_reads_what_the_projector_writes(
    pg_url: str, start_server: Callable[..., Server], tenant: str, projector: subprocess.Popen[bytes]
) -> None:
    server = start_server(DATABASE_URL=pg_url, RUN_PROJECTIONS_IN_PROCESS="false")
    with client(server, server.auth_headers(tenant)) as api:
        created = ok(api.post("/agents/p1", json=GOALS), 201)
        written = ok(api.put("/agents/p1/progress", json={"objective_progress": {"alpha": 60}}))
        got = ok(api.get("/agents/p1", params={"min_position": written["position"]}))
        assert got["version"] == written["version"] > created["version"]
        assert got["progress"]["overall_progress"] == 60.0
        assert projector.poll() is None
