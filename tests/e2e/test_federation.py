"""Two registries on loopback federate: a peer's public agents are imported as read-only copies,
changes and deletions propagate on the next sync, and a local agent is never overwritten."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Server
from tests.e2e.support import login, ok, problem

FIXTURES = Path(__file__).parent.parent / "fixtures" / "a2a"
OPERATOR = "ops"


def card(name: str, description: str) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads((FIXTURES / "sample-card-v1.0.json").read_text())
    return {**sample, "name": name, "description": description}


@pytest.fixture
def second_database(pg_url: str) -> Iterator[str]:
    """A database of its own for the second registry (pg_url is shared by the session)."""
    name = f"a2a_peer_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{pg_url.rpartition('/')[0]}/{name}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def registries(
    start_server: Callable[..., Server], store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Server, Server]:
    """This registry and its peer, each with its own log."""
    env = {"OUTBOUND_ALLOW_NETS": "127.0.0.0/8", "OPERATOR_TENANT": OPERATOR}
    peer_env = {**env, "DATA_DIR": str(tmp_path / "peer-data")}
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
        peer_env["DATABASE_URL"] = request.getfixturevalue("second_database")
    return start_server(**env), start_server(**peer_env)


def listed(client: httpx.Client, peer_id: str) -> dict[str, Any] | None:
    """The peer as the peers read model shows it: not at all until it has read the addition."""
    return next((p for p in ok(client.get("/api/v1/peers"))["items"] if p["peer_id"] == peer_id), None)


def sync(client: httpx.Client, peer_id: str) -> dict[str, Any]:
    """Ask for a sync and wait until the peers read model shows one that ended after asking."""
    last = (listed(client, peer_id) or {}).get("last_sync_at")
    ok(client.post(f"/api/v1/peers/{peer_id}/sync"), 202)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        peer = listed(client, peer_id)
        if peer is not None and peer["last_sync_at"] and peer["last_sync_at"] != last:
            assert peer["last_sync_status"] == "ok", peer
            return peer
        time.sleep(0.1)
    raise AssertionError("the sync did not end")


def names(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """What the client lists, by card name (the read models are applied page by page together:
    once the peers read model shows a sync, the agents it imported are there too)."""
    page = ok(client.get("/api/v1/agents", params={"limit": 100}))
    return {a["card"]["name"]: a for a in page["items"]}


def test_two_registries_federate(registries: tuple[Server, Server], tenant: str) -> None:
    here, peer = registries
    _, peer_headers = login(peer, tenant)
    _, operator_headers = login(here, OPERATOR)
    _, user_headers = login(here, tenant + "x")
    with (
        httpx.Client(base_url=peer.url, headers=peer_headers, timeout=30) as remote,
        httpx.Client(base_url=here.url, headers=operator_headers, timeout=30) as operator,
        httpx.Client(base_url=here.url, headers=user_headers, timeout=30) as user,
    ):
        ok(remote.post("/api/v1/agents", json={"agent_id": "open", "card": card("Open", "v1"), "visibility": "public"}), 201)
        ok(remote.post("/api/v1/agents", json={"agent_id": "secret", "card": card("Secret", "v1")}), 201)
        # A local public agent with the same agent id as the peer's.
        ok(user.post("/api/v1/agents", json={"agent_id": "open", "card": card("Local", "mine"), "visibility": "public"}), 201)

        problem(user.post("/api/v1/peers", json={"url": peer.url}), 404)  # operators only
        peer_id = ok(operator.post("/api/v1/peers", json={"url": peer.url}), 201)["peer_id"]
        synced = sync(operator, peer_id)
        assert synced["imported"] == 1

        listed = names(user)
        assert "Secret" not in listed
        copy = listed["Open"]
        assert (copy["origin"], copy["owned"]) == (peer.url, False)
        assert listed["Local"]["owned"] is True
        served = ok(user.get(f"/api/v1/agents/{copy['id']}/card"))
        assert served["description"] == "v1"
        problem(user.put(f"/api/v1/agents/{copy['id']}", json={"visibility": "private"}), 404)  # read-only

        updated = ok(remote.put("/api/v1/agents/open", json={"card": card("Open", "v2")}))
        # The peer's index is a read model: the sync must not run before it shows the change.
        ok(remote.get("/api/v1/agents", params={"min_position": updated["position"]}))
        sync(operator, peer_id)
        assert names(user)["Open"]["card"]["description"] == "v2"
        assert names(user)["Local"]["card"]["description"] == "mine"

        deleted = ok(remote.request("DELETE", "/api/v1/agents/open"))
        ok(remote.get("/api/v1/agents", params={"min_position": deleted["position"]}))
        sync(operator, peer_id)
        listed = names(user)
        assert "Open" not in listed and listed["Local"]["card"]["description"] == "mine"
