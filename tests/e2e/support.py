"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

import httpx

from infrastructure.settings import Settings
from interfaces.bootstrap import build_system
from tests.conftest import Server

API = "/api/v1/goals"
PROBLEM = "application/problem+json"


# Every read model a server runs, by name: what health and the operations status list.
READ_MODELS = frozenset(
    {
        "goal_progress",
        "oauth_clients",
        "event_facts",
        "agent_cards",
        "agent_search",
        "peers",
        "webhook_outbox",
        "collection_targets",
        "audit_log",
        "audit_anchors",
    }
)


def login(server: Server, tenant: str) -> tuple[str, dict[str, str]]:
    """A new client of `tenant` with every scope: its id and the headers carrying its token."""
    client_id, secret = server.client(tenant)
    answer = httpx.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return client_id, {"Authorization": f"Bearer {answer.json()['access_token']}"}


def log_position(server: Server) -> int:
    """How far the server's event log goes, read from its store (public health does not say)."""
    system = build_system(Settings(**{**server.env, "RUN_PROJECTIONS_IN_PROCESS": "false"}))  # type: ignore[arg-type]
    try:
        return system.goals.log_position()
    finally:
        system.close()


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body
