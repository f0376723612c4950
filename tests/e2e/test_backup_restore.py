"""A backup restored into a new database serves what the original served: ops/backup of a
populated store (goals, progress, a registered agent, clients, a webhook delivered), then
ops/restore into an empty database and a new DATA_DIR, which rebuilds every read model from
the log. Every read model's answers and the audit root are the same, and a token the
original issued still works (the key ring came back with the log)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import ROOT, Server
from tests.e2e import test_webhooks
from tests.e2e.support import API, login, ok
from tests.e2e.test_webhooks import FAST, WEBHOOKS, Receiver
from tests.integration.support import wait_until

receiver = test_webhooks.receiver
AGENTS = "/api/v1/agents"
CARD = json.loads((ROOT / "tests" / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())
GOALS = {
    "goals": {
        "purpose_statement": "route planning for the fleet",
        "primary_objectives": [{"id": "a", "title": "coverage", "weight": 2}, {"id": "b", "title": "speed"}],
    }
}


@pytest.fixture
def databases(pg_url: str) -> Iterator[Callable[[], str]]:
    """New empty databases, dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"a2a_backup_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"{pg_url.rpartition('/')[0]}/{name}"

    yield make
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _ops(command: str, directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "ops" / command), str(directory)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _populate(api: httpx.Client, receiver: Receiver) -> int:
    """Goals, progress, a status change, an agent registered, a webhook: the last position."""
    ok(api.post(WEBHOOKS, json={"url": receiver.url, "events": ["goals_set", "status_changed"]}), 201)
    for agent in ("planner", "router", "scout"):
        ok(api.post(f"{API}/agents/{agent}", json=GOALS), 201)
        for value in (20, 55, 80):
            ok(api.put(f"{API}/agents/{agent}/progress", json={"objective_progress": {"a": value, "b": value / 2}}))
    ok(api.put(f"{API}/agents/scout/status", json={"status": "paused", "reason": "review"}))
    body = {"agent_id": "planner", "card": CARD, "visibility": "public"}
    return int(ok(api.post(AGENTS, json=body), 201)["position"])


def _answers(api: httpx.Client, position: int) -> dict[str, Any]:
    """What each read model answers, read at `position` or later."""
    at = {"min_position": position}
    paths = [
        f"{API}/",
        *(f"{API}/agents/{a}" for a in ("planner", "router", "scout")),
        f"{API}/agents/router/history",
        f"{API}/analytics/events",
        f"{API}/analytics/planner",
        f"{AGENTS}",
        f"{AGENTS}/planner",
        f"{AGENTS}/planner/card",
        f"{AGENTS}?q=route",
        "/api/v1/admin/clients",
        "/api/v1/peers",
        WEBHOOKS,
        "/api/v1/audit/root",
    ]
    found = {path: ok(api.get(path, params=at if "?" not in path else None)) for path in paths}
    subscription = found[WEBHOOKS]["items"][0]["id"]
    found["deliveries"] = ok(api.get(f"{WEBHOOKS}/{subscription}/deliveries"))
    # The time spent in the current status runs on with the clock: not a read model's answer.
    found[f"{API}/analytics/planner"].pop("time_in_status_s")
    found["positions"] = {
        p["name"]: p["position"] for p in ok(api.get("/api/v1/admin/projections"))["projections"]
    }
    return found


# With ENCRYPTION=on, the wrapped data keys travel in the backup and the master keys do not:
# the restored server reads the log with MASTER_KEYS from its environment.
MASTER = {"ENCRYPTION": "on", "MASTER_KEYS": base64.b64encode(bytes(range(32))).decode()}


@pytest.mark.parametrize("encryption", [{}, MASTER], ids=["plain", "encrypted"])
def test_a_restored_backup_answers_as_the_original_did(
    start_server: Callable[..., Server],
    databases: Callable[[], str],
    receiver: Receiver,
    tmp_path: Path,
    encryption: dict[str, str],
) -> None:
    receiver.fail_first = 0
    original_env = {
        "DATABASE_URL": databases(),
        "DATA_DIR": str(tmp_path / "original"),
        # Signed cards name their key set's URL: one public base for both servers, whatever their ports.
        "REGISTRY_BASE_URL": "http://registry.test",
        **FAST,
        **encryption,
    }
    original = start_server(**original_env)
    _, headers = login(original, "default")  # the operator tenant: its admins see the read models
    with httpx.Client(base_url=original.url, headers=headers, timeout=30) as api:
        position = _populate(api, receiver)
        wait_until(lambda: len(receiver.delivered()) == 4, 60, "the webhook deliveries", 0.1)
        before = _answers(api, position)
    original.stop()

    backup = tmp_path / "backup"
    done = _ops("backup", backup, original_env)
    assert done.returncode == 0, done.stderr
    settings = json.loads((backup / "settings.json").read_text())
    assert settings["DATABASE_URL"] == original_env["DATABASE_URL"] and "SECRETS_KEY" in settings
    assert sorted(p.name for p in (backup / "keys").iterdir()) == ["secrets-key", "signing-keys.json"]

    restored_env = {**original_env, "DATABASE_URL": databases(), "DATA_DIR": str(tmp_path / "restored")}
    done = _ops("restore", backup, restored_env)
    assert done.returncode == 0, done.stderr
    assert "rebuilt" in done.stderr  # the rebuild's final line, after its progress bar
    # Into a database that is not empty, a restore refuses.
    again = _ops("restore", backup, restored_env)
    assert again.returncode != 0 and "not empty" in again.stderr

    restored = start_server(**restored_env)
    with httpx.Client(base_url=restored.url, headers=headers, timeout=30) as api:  # the original's token
        after = _answers(api, position)
        for path, answer in before.items():
            assert after[path] == answer, path
        # The restored log takes new writes after the old ones.
        written = ok(api.put(f"{API}/agents/router/progress", json={"objective_progress": {"a": 90}}))
        assert written["position"] > position
    assert len(receiver.delivered()) == 4  # nothing of the history sent again


def _goals(server: Server, headers: dict[str, str], position: int = 0) -> httpx.Response:
    params = {"min_position": position} if position else {}
    return httpx.get(f"{server.url}{API}/agents/planner", headers=headers, params=params, timeout=30)


def test_a_backup_from_before_an_erasure_does_not_bring_the_tenant_back(
    start_server: Callable[..., Server], databases: Callable[[], str], tmp_path: Path
) -> None:
    """Backup; erase acme; restore. The restore erases acme again (ERASURE_REGISTER lives
    apart from the database); a restore that did not know of the erasure is put right when a
    server starts with the register. Either way acme reads as erased, globex as it was, and
    `audit verify` passes."""
    register = tmp_path / "secrets" / "erasures.jsonl"
    original_env = {
        "DATABASE_URL": databases(),
        "DATA_DIR": str(tmp_path / "original"),
        "OPERATOR_TENANT": "ops",
        "ERASURE_REGISTER": str(register),
        **MASTER,
    }
    original = start_server(**original_env)
    acme, globex = original.auth_headers("acme"), original.auth_headers("globex")
    for headers in (acme, globex):
        ok(httpx.post(f"{original.url}{API}/agents/planner", json=GOALS, headers=headers, timeout=30), 201)
    progress = {"objective_progress": {"a": 40}}
    reported = httpx.put(f"{original.url}{API}/agents/planner/progress", json=progress, headers=globex, timeout=30)
    position = int(ok(reported)["position"])
    before = ok(_goals(original, globex, position))
    assert "route planning" in _goals(original, acme, position).text

    backup = tmp_path / "backup"
    done = _ops("backup", backup, original_env)
    assert done.returncode == 0, done.stderr
    erased = httpx.post(
        f"{original.url}/api/v1/admin/tenants/acme/erase",
        headers=original.auth_headers("ops", scopes=["admin"]),
        timeout=60,
    )
    assert erased.status_code == 200, erased.text
    original.stop()
    assert register.exists() and "acme" in register.read_text()

    def gone(server: Server) -> None:
        answer = _goals(server, acme)
        assert answer.status_code in {401, 404}, answer.text  # its client was erased with it
        assert "route planning" not in answer.text
        assert ok(_goals(server, globex)) == before
        with psycopg.connect(server.env["DATABASE_URL"]) as conn:  # its key is gone, its erasure recorded
            assert conn.execute("SELECT COUNT(*) FROM a2a_data_keys WHERE tenant = 'acme'").fetchone() == (0,)
            assert conn.execute("SELECT COUNT(*) FROM a2a_erased_keys WHERE tenant = 'acme'").fetchone() == (1,)
        verified = subprocess.run(
            [sys.executable, "-m", "interfaces.cli.main", "audit", "verify"],
            cwd=ROOT,
            env={**os.environ, **server.env, "RUN_PROJECTIONS_IN_PROCESS": "false"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr

    # The restore knows of the erasure: it erases acme again.
    restored_env = {**original_env, "DATABASE_URL": databases(), "DATA_DIR": str(tmp_path / "restored")}
    done = _ops("restore", backup, restored_env)
    assert done.returncode == 0, done.stderr
    assert "tenant acme was erased after this backup: erased again" in done.stderr
    restored = start_server(**restored_env)
    gone(restored)
    restored.stop()

    # A restore made without the register serves acme again, until a server starts with it.
    blind_env = {
        **original_env,
        "DATABASE_URL": databases(),
        "DATA_DIR": str(tmp_path / "blind"),
        "ERASURE_REGISTER": str(tmp_path / "elsewhere.jsonl"),
    }
    done = _ops("restore", backup, blind_env)
    assert done.returncode == 0, done.stderr
    assert "erased again" not in done.stderr
    gone(start_server(**{**blind_env, "ERASURE_REGISTER": str(register)}))
