"""The command line as a user runs it: the demo fleet that a server on the same DATA_DIR
then serves, the audit replay, and the README's run command (ops/run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Server, free_port

API = "/api/v1/goals"


def cli_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "APP_ENV": "test", "DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    return env


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interfaces.cli.main", *args],
        cwd=ROOT,
        env=cli_env(data_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """A DATA_DIR holding a demo fleet of three agents with a week of progress."""
    data_dir = tmp_path / "demo-data"
    loaded = cli(data_dir, "demo", "--agents", "3", "--weeks", "1")
    assert loaded.returncode == 0, loaded.stderr
    assert "3 agents" in loaded.stderr
    return data_dir


def test_demo_fleet_is_served_by_a_server_on_the_same_data_dir(
    demo_dir: Path, start_server: Callable[..., Server]
) -> None:
    server = start_server(DATA_DIR=str(demo_dir))
    # the demo loads into tenant "default"
    headers = server.auth_headers("default")
    with httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=30) as api:
        listed = api.get("/")
        assert listed.status_code == 200, listed.text
        fleet = listed.json()
        assert fleet["total"] == 3
        ids = [g["agent_id"] for g in fleet["items"]]
        assert ids == ["agent0_data_product", "agent1_support_triage", "agent2_code_review"]
        for goal in fleet["items"]:
            assert goal["goals"]["primary_objectives"]
            assert goal["progress"]["last_updated"] is not None
            assert goal["created_by"] == "demo-loader"
        analytics = api.get("/analytics").json()
        assert analytics["agents_with_goals"] == 3
        assert analytics["progress_updates"] == 3 * 7
        history = api.get(f"/agents/{ids[0]}/history", params={"action": "progress_updated", "limit": 500})
        assert len(history.json()["items"]) == 7


def test_replay_prints_the_earlier_state_as_json(demo_dir: Path) -> None:
    replayed = cli(demo_dir, "replay", "--agent", "agent0_data_product", "--version", "2")
    assert replayed.returncode == 0, replayed.stderr
    state: dict[str, Any] = json.loads(replayed.stdout)
    assert state["agent_id"] == "agent0_data_product"
    assert state["version"] == 2
    assert state["goal_version"] == 1
    assert state["progress"]["objective_progress"] == {}
    assert state["progress"]["overall_progress"] == 0.0

    latest = cli(demo_dir, "replay", "--agent", "agent0_data_product")
    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout)["version"] > 2

    # the instant of version 2 replays to exactly that state
    at = cli(demo_dir, "replay", "--agent", "agent0_data_product", "--as-of", state["updated_at"])
    assert at.returncode == 0, at.stderr
    assert json.loads(at.stdout) == state


def test_replay_as_of_an_instant_without_time_zone_does_not_crash(demo_dir: Path) -> None:
    """The HTTP API refuses a naive as_of with a 422; the CLI must not die with a traceback."""
    state = json.loads(cli(demo_dir, "replay", "--agent", "agent0_data_product", "--version", "2").stdout)
    naive = state["updated_at"].removesuffix("+00:00")
    replayed = cli(demo_dir, "replay", "--agent", "agent0_data_product", "--as-of", naive)
    if replayed.returncode == 0:  # read as UTC
        assert json.loads(replayed.stdout)["version"] == 2
    else:  # refused with a message
        assert "Traceback" not in replayed.stderr, replayed.stderr
        assert "TypeError" not in replayed.stderr, replayed.stderr


def test_replay_of_an_unknown_agent_fails(demo_dir: Path) -> None:
    unknown = cli(demo_dir, "replay", "--agent", "nobody")
    assert unknown.returncode != 0
    assert "nobody" in unknown.stderr
    assert unknown.stdout == ""
    other_tenant = cli(demo_dir, "replay", "--agent", "agent0_data_product", "--tenant", "elsewhere")
    assert other_tenant.returncode != 0


@pytest.fixture
def ops_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """`bash ops/run` on a free port, in its own process group so it can be stopped whole."""
    port = free_port()
    log_path = tmp_path / "ops-run.log"
    env = {**cli_env(tmp_path / "run-data"), "PORT": str(port)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "ops/run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc, f"http://127.0.0.1:{port}", log_path
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def test_ops_run_serves_the_api(ops_run: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    proc, url, log_path = ops_run
    health: httpx.Response | None = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            health = httpx.get(f"{url}{API}/health", timeout=2)
            if health.status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    assert health is not None and health.status_code == 200, log_path.read_text()
    assert health.json()["store"] == "sqlite"
    # the server computes the busiest tenants' analytics at start-up (none yet: done at once)
    assert health.json()["analytics"] in {"warming", "warm"}
    assert (log_path.parent / "run-data" / "events.sqlite").exists()
    # the whole system in one process: its scheduler sent projection_watch and its worker ran it
    lag = 'a2a_projection_lag_events{projection="goal_progress"}'
    while lag not in httpx.get(f"{url}/metrics/", timeout=2).text:
        assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()
        time.sleep(0.2)


def test_the_first_runs_client_hint_names_the_port_served_on(start_server: Callable[..., Server]) -> None:
    """`serve --port P` on a new DATA_DIR in dev: the printed command gets a token from P."""
    server = start_server(APP_ENV="dev")
    hint = server.log_text()
    command = next(line for line in hint.splitlines() if "grant_type=client_credentials" in line)
    assert command.endswith(f"{server.url}/oauth/token"), command
    credentials = command.split("-u ", 1)[1].split(" ", 1)[0]
    client_id, secret = credentials.split(":", 1)
    token = httpx.post(command.rsplit(" ", 1)[1], data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert token.status_code == 200 and token.json()["access_token"]
