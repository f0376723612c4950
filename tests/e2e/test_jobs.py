"""Jobs as an operator runs them: `a2a-goals worker` and `a2a-goals scheduler` as processes of
their own on Redis (TEST_REDIS_URL), beside a server that queues rebuilds for them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import ROOT, Server, free_port
from tests.e2e.support import problem
from tests.e2e.test_cli import cli

OPS = "/api/v1/admin/projections"
STOP_S = 10.0  # a bound: a worker that does not exit by then is hung


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    return url


@pytest.fixture
def jobs_env(
    redis_url: str, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """What the server, the worker and the scheduler share: the store under test, a Redis
    broker and a queue prefix of this test's own (its keys are deleted afterwards)."""
    prefix = f"e{uuid.uuid4().hex[:12]}"
    env = {
        "APP_ENV": "test",
        "DATA_DIR": str(tmp_path / "jobs-data"),
        "BROKER_URL": redis_url,
        "QUEUE_PREFIX": prefix,
        "OPERATOR_TENANT": "ops",
    }
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    yield env
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """`a2a-goals ARGS` as a process of its own, killed at the end if it is still running."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{args[0]}-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _logs(tmp_path: Path) -> str:
    """What the processes of the test have written (for a failing assertion's message)."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(tmp_path.glob("*.log")))


def _stops_on_sigterm(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(STOP_S)


def _rebuild(api: httpx.Client, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {j["name"]: j for j in api.get(OPS).json()["rebuilds"]}.get(name, {})
    return found


def test_a_worker_process_runs_the_rebuild_a_server_queued_and_exits_on_sigterm(
    jobs_env: dict[str, str],
    start_server: Callable[..., Server],
    start_process: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    server = start_server(**jobs_env)
    with httpx.Client(base_url=server.url, headers=server.auth_headers("ops"), timeout=30) as api:
        created = api.post(
            "/api/v1/goals/agents/a1", json={"goals": {"purpose_statement": "p", "primary_objectives": ["A"]}}
        ).json()
        started = api.post(f"{OPS}/all/rebuild")
        assert started.status_code == 202, started.text
        assert started.json()["state"] == "queued"
        # with a broker, the server runs no jobs itself: the rebuild waits for a worker
        assert problem(api.post(f"{OPS}/event_facts/rebuild"), 409)["detail"].startswith(
            "a rebuild asked for is queued"
        )
        time.sleep(1.0)
        assert _rebuild(api, "all")["state"] == "queued"

        worker = start_process(jobs_env, "worker", "--threads", "2")
        deadline = time.monotonic() + 120
        while _rebuild(api, "all")["state"] in {"queued", "running"} and time.monotonic() < deadline:
            assert worker.poll() is None, _logs(tmp_path)
            time.sleep(0.1)
        job = _rebuild(api, "all")
        assert job["state"] == "done", (job, _logs(tmp_path))
        assert job["events"] >= created["position"]
        read = api.get("/api/v1/goals/agents/a1", params={"min_position": created["position"]})
        assert read.status_code == 200 and read.json()["agent_id"] == "a1"

    assert _stops_on_sigterm(worker) == 0, _logs(tmp_path)
    assert "Traceback" not in _logs(tmp_path)


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_the_scheduler_sends_polls_a_worker_runs_and_both_exit_on_sigterm(
    jobs_env: dict[str, str], start_process: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    env = {**jobs_env, "PROJECTION_WATCH_S": "0.5"}
    port = free_port()
    worker = start_process(env, "worker", "--threads", "1", "--metrics-port", str(port))
    scheduler = start_process(env, "scheduler")
    metrics = ""
    deadline = time.monotonic() + 60
    while 'a2a_projection_lag_events{projection="goal_progress"}' not in metrics:
        assert time.monotonic() < deadline, _logs(tmp_path)
        assert worker.poll() is None and scheduler.poll() is None, _logs(tmp_path)
        with contextlib.suppress(httpx.TransportError):  # not listening yet
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        time.sleep(0.2)
    assert _stops_on_sigterm(scheduler) == 0, _logs(tmp_path)
    assert _stops_on_sigterm(worker) == 0, _logs(tmp_path)


def test_without_a_broker_the_worker_command_says_jobs_run_in_the_server(tmp_path: Path) -> None:
    refused = cli(tmp_path / "data", "worker")
    assert refused.returncode == 2
    assert "BROKER_URL is not set" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_rebuild_is_a_503_while_the_broker_cannot_be_reached(
    jobs_env: dict[str, str], start_server: Callable[..., Server]
) -> None:
    # nothing listens there: Redis refuses at once
    server = start_server(**{**jobs_env, "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with httpx.Client(base_url=server.url, headers=server.auth_headers("ops"), timeout=30) as api:
        refused = problem(api.post(f"{OPS}/all/rebuild"), 503)
        assert refused["type"] == "/problems/unavailable"
        assert api.post(f"{OPS}/all/rebuild").headers["Retry-After"]
