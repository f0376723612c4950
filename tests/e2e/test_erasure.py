"""Erasure of a tenant over HTTP, as an operator asks for it: the tenant's reads are 404 or
empty afterwards, the other tenant's are as they were; only operator admins may erase, and
only with ENCRYPTION=on. And `a2a-goals tenants erase`, which asks first."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx

from tests.conftest import ROOT, Server

GOALS = {"goals": {"purpose_statement": "Confidential purpose", "primary_objectives": ["A"]}}


def _erase(server: Server, tenant: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/admin/tenants/{tenant}/erase", headers=headers, timeout=60)


def _write(server: Server, tenant: str) -> tuple[dict[str, str], int]:
    headers = server.auth_headers(tenant)
    made = httpx.post(f"{server.url}/api/v1/goals/agents/a1", json=GOALS, headers=headers, timeout=30)
    assert made.status_code == 201, made.text
    return headers, int(made.json()["position"])


def _read(server: Server, headers: dict[str, str], path: str, position: int = 0) -> httpx.Response:
    params = {"min_position": position} if position else {}
    return httpx.get(f"{server.url}/api/v1/goals{path}", headers=headers, params=params, timeout=30)


def test_an_operator_erases_a_tenant_and_the_other_is_untouched(start_server: Callable[..., Server]) -> None:
    server = start_server(OPERATOR_TENANT="ops", ENCRYPTION="on")
    acme, _ = _write(server, "acme")
    globex, position = _write(server, "globex")
    before = _read(server, globex, "/agents/a1", position)
    assert before.status_code == 200 and _read(server, acme, "/agents/a1", position).status_code == 200

    assert _erase(server, "acme", server.auth_headers("acme", scopes=["admin"])).status_code == 404
    operator = server.auth_headers("ops", scopes=["admin"])
    refused = _erase(server, "ops", operator)  # the operators' own tenant: never erased
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/erasure-refused", refused.text
    assert "operator tenant" in refused.json()["detail"]
    assert httpx.get(f"{server.url}/api/v1/admin/clients", headers=operator, timeout=30).status_code == 200
    erased = _erase(server, "acme", server.auth_headers("ops", scopes=["admin"]))
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"] is True and erased.json()["key_id"]

    assert _read(server, acme, "/agents/a1").status_code == 404
    assert _read(server, acme, "/agents/a1/history").status_code == 404
    listed = _read(server, acme, "/")
    assert listed.status_code == 200 and listed.json()["items"] == []
    after = _read(server, globex, "/agents/a1")
    assert after.status_code == 200 and after.json() == before.json()
    # Nothing more is written for the erased tenant, whoever asks.
    again = httpx.post(
        f"{server.url}/api/v1/goals/agents/a2", json=GOALS, headers=server.auth_headers("acme"), timeout=30
    )
    assert again.status_code == 410, again.text
    assert again.json()["type"] == "/problems/tenant-erased"
    assert "Traceback" not in server.log_text(), server.log_text()[-5_000:]


def test_erasure_is_refused_when_encryption_is_off(start_server: Callable[..., Server]) -> None:
    server = start_server(OPERATOR_TENANT="ops", ENCRYPTION="off")
    acme, position = _write(server, "acme")
    refused = _erase(server, "acme", server.auth_headers("ops", scopes=["admin"]))
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "/problems/erasure-unavailable"
    assert "ENCRYPTION is off" in refused.json()["detail"]
    assert _read(server, acme, "/agents/a1", position).status_code == 200


def test_the_cli_asks_before_erasing(start_server: Callable[..., Server]) -> None:
    server = start_server(ENCRYPTION="on")
    acme, position = _write(server, "acme")
    env = {**os.environ, **server.env, "RUN_PROJECTIONS_IN_PROCESS": "false"}
    command = [sys.executable, "-m", "interfaces.cli.main", "tenants", "erase", "acme"]
    declined = subprocess.run(command, cwd=ROOT, env=env, input="n\n", capture_output=True, text=True, timeout=120)
    assert declined.returncode != 0 and "Aborted" in declined.stdout + declined.stderr
    assert _read(server, acme, "/agents/a1", position).status_code == 200
    done = subprocess.run([*command, "--yes"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "tenant acme erased: data key" in done.stdout
