"""Request headers over real HTTP: Idempotency-Key (on both stores), X-Request-ID, the tenant
the bearer token names, and the published API description."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.support import log_position, ok

API = "/api/v1/goals"
GOALS: dict[str, Any] = {
    "goals": {"purpose_statement": "Forecast weekly demand", "primary_objectives": ["Alpha"]}
}
SEED_PATHS = {
    f"{API}/",
    f"{API}/agents/{{agent_id}}",
    f"{API}/agents/{{agent_id}}/progress",
    f"{API}/agents/{{agent_id}}/status",
    f"{API}/agents/{{agent_id}}/auto-update",
    f"{API}/agents/{{agent_id}}/history",
    f"{API}/progress:batch",
    f"{API}/analytics",
    f"{API}/analytics/{{agent_id}}",
    f"{API}/health",
}


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


@pytest.fixture
def api(server: Server, tenant: str) -> Iterator[httpx.Client]:
    headers = server.auth_headers(tenant)
    with httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def server_on_each_store(
    store_kind: str, start_server: Callable[..., Server], request: pytest.FixtureRequest
) -> Server:
    env = {"DATABASE_URL": request.getfixturevalue("pg_url")} if store_kind == "postgres" else {}
    return start_server(**env)


@pytest.fixture
def api_on_each_store(server_on_each_store: Server, tenant: str) -> Iterator[httpx.Client]:
    headers = server_on_each_store.auth_headers(tenant)
    with httpx.Client(base_url=f"{server_on_each_store.url}{API}", headers=headers, timeout=30) as client:
        yield client


def test_same_idempotency_key_and_body_answers_the_same_and_writes_once(
    api_on_each_store: httpx.Client, server_on_each_store: Server
) -> None:
    api = api_on_each_store
    created = ok(api.post("/agents/a1", json=GOALS, headers={"Idempotency-Key": "create-a1"}), 201)
    retried = ok(api.post("/agents/a1", json=GOALS, headers={"Idempotency-Key": "create-a1"}), 201)
    assert retried["replayed"] is True
    assert {k: v for k, v in retried.items() if k != "replayed"} == {
        k: v for k, v in created.items() if k != "replayed"
    }

    key = {"Idempotency-Key": "progress-a1-1"}
    payload = {"objective_progress": {"alpha": 30}}
    first = api.put("/agents/a1/progress", json=payload, headers=key)
    answer = ok(first)
    assert answer["replayed"] is False
    position = log_position(server_on_each_store)

    second = api.put("/agents/a1/progress", json=payload, headers=key)
    again = ok(second)
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in answer.items() if k != "replayed"
    }
    assert second.headers["etag"] == first.headers["etag"]
    assert log_position(server_on_each_store) == position

    view = ok(api.get("/agents/a1", params={"min_position": position}))
    assert view["version"] == answer["version"]
    updates = ok(api.get("/agents/a1/history", params={"action": "progress_updated"}))["items"]
    assert len(updates) == 1
    assert updates[0]["data"]["objective_progress"] == {"alpha": 30.0}


def test_same_idempotency_key_with_another_body_is_422(
    api_on_each_store: httpx.Client, server_on_each_store: Server
) -> None:
    api = api_on_each_store
    ok(api.post("/agents/a1", json=GOALS), 201)
    key = {"Idempotency-Key": "progress-a1-2"}
    ok(api.put("/agents/a1/progress", json={"objective_progress": {"alpha": 30}}, headers=key))
    position = log_position(server_on_each_store)

    reused = api.put("/agents/a1/progress", json={"objective_progress": {"alpha": 60}}, headers=key)
    assert reused.status_code == 422, reused.text
    assert reused.headers["content-type"].startswith("application/problem+json")
    body = reused.json()
    assert body["type"] == "/problems/idempotency-key-reused"
    assert body["status"] == 422
    assert log_position(server_on_each_store) == position


def test_a_well_formed_request_id_is_echoed_and_recorded_in_the_history(api: httpx.Client) -> None:
    request_id = "req-2026.11.20_abc"
    created = api.post("/agents/a1", json=GOALS, headers={"X-Request-ID": request_id})
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == request_id

    progressed = api.put(
        "/agents/a1/progress", json={"objective_progress": {"alpha": 10}}, headers={"X-Request-ID": "bad id!"}
    )
    assert progressed.status_code == 200, progressed.text
    generated = progressed.headers["x-request-id"]
    assert generated != "bad id!"
    assert re.fullmatch(r"[A-Za-z0-9._-]{8,128}", generated)

    position = progressed.json()["position"]
    history = ok(api.get("/agents/a1/history", params={"min_position": position}))["items"]
    by_action = {e["action"]: e["request_id"] for e in history}
    assert by_action == {"goals_set": request_id, "progress_updated": generated}

    missing = api.get("/agents/ghost", headers={"X-Request-ID": "trace-0000001"})
    assert missing.headers["x-request-id"] == "trace-0000001"
    assert missing.json()["request_id"] == "trace-0000001"


def test_a_tenant_sees_nothing_of_another_tenant(server: Server, tenant: str) -> None:
    tenant_b = f"{tenant}-b"
    as_a = server.auth_headers(tenant)
    as_b = server.auth_headers(tenant_b)
    with httpx.Client(base_url=f"{server.url}{API}", timeout=30) as http:
        created = ok(http.post("/agents/a1", json=GOALS, headers=as_a), 201)
        wait = {"min_position": created["position"]}
        assert ok(http.get("/agents/a1", params=wait, headers=as_a))["agent_id"] == "a1"

        assert http.get("/agents/a1", params=wait, headers=as_b).status_code == 404
        assert http.get("/agents/a1/history", params=wait, headers=as_b).status_code == 404
        assert http.get("/agents/a1", params={"version": 2}, headers=as_b).status_code == 404
        assert http.get("/analytics/a1", params=wait, headers=as_b).status_code == 404
        listed = ok(http.get("/", params=wait, headers=as_b))
        assert (listed["total"], listed["items"]) == (0, [])
        assert ok(http.get("/analytics", params=wait, headers=as_b))["agents_with_goals"] == 0
        progress = http.put("/agents/a1/progress", json={"objective_progress": {"alpha": 5}}, headers=as_b)
        assert progress.status_code == 404
        # the tenant is the token's: a tenant header naming A does not let B's token in
        posing = http.get("/agents/a1", params=wait, headers={**as_b, "X-Tenant": tenant})
        assert posing.status_code == 404

        # B may use the same agent id for an agent of its own; A's stays as it was
        ok(http.post("/agents/a1", json=GOALS, headers=as_b), 201)
        mine = ok(http.get("/", params=wait, headers=as_a))
        assert mine["total"] == 1
        assert mine["items"][0]["progress"]["objective_progress"] == {}


def test_openapi_lists_every_seed_path_and_docs_answer(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=30)
    assert spec.status_code == 200
    paths = set(spec.json()["paths"])
    assert paths >= SEED_PATHS, SEED_PATHS - paths
    docs = httpx.get(f"{server.url}/docs", timeout=30)
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
