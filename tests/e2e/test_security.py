"""Attacks on a running server: tenancy, scopes, security headers and CORS. Every refused
attack must get the right status *and* write nothing to the event log.

The helpers at the top are shared by the other tests/e2e/test_security_*.py files (tokens,
admin, limits)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.support import log_position, ok, problem

API = "/api/v1/goals"
ADMIN = "/api/v1/admin"
READ = ("goals:read",)
READ_WRITE = ("goals:read", "goals:write")
GOALS: dict[str, Any] = {
    "goals": {
        "purpose_statement": "Keep the ledger balanced",
        "primary_objectives": [{"id": "o1", "title": "Balance"}],
    }
}
PROGRESS: dict[str, Any] = {"objective_progress": {"o1": 40}}


def store_env(store_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Server environment for the store under test."""
    return {"DATABASE_URL": request.getfixturevalue("pg_url")} if store_kind == "postgres" else {}


@contextmanager
def nothing_written(server: Server) -> Iterator[None]:
    """The event log does not grow inside the block."""
    before = log_position(server)
    yield
    assert log_position(server) == before, "a refused request wrote to the log"


def request_token(server: Server, client_id: str, secret: str, scope: str | None = None) -> httpx.Response:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope is not None else {})}
    return httpx.post(f"{server.url}/oauth/token", data=data, auth=(client_id, secret), timeout=30)


def fetch_token(server: Server, client_id: str, secret: str, scope: str | None = None) -> str:
    token: str = ok(request_token(server, client_id, secret, scope))["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(server: Server, tenant: str, scopes: Sequence[str]) -> tuple[str, str, dict[str, str]]:
    """A new client of `tenant`: (client_id, secret, bearer headers of a fresh token)."""
    client_id, secret = server.client(tenant, scopes)
    return client_id, secret, bearer(fetch_token(server, client_id, secret))


def http(server: Server, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def eventually(check: Callable[[], bool], *, within_s: float = 5.0) -> bool:
    """Poll `check` until it holds (a functional wait for asynchronous read models)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def challenge(response: httpx.Response) -> str:
    value: str = response.headers.get("www-authenticate", "")
    return value


# -- tenancy -----------------------------------------------------------------------------------


def test_another_tenant_neither_sees_nor_changes_an_agent(
    store_kind: str, start_server: Callable[..., Server], tenant: str, request: pytest.FixtureRequest
) -> None:
    server = start_server(**store_env(store_kind, request))
    other = f"{tenant}-b"
    everything = (*READ_WRITE, "analytics:read")
    _, _, a_headers = login(server, tenant, everything)
    _, _, b_headers = login(server, other, everything)
    with http(server, a_headers) as a, http(server, b_headers) as b:
        ok(a.post(f"{API}/agents/a1", json=GOALS), 201)
        written = ok(a.put(f"{API}/agents/a1/progress", json=PROGRESS))
        own = ok(b.post(f"{API}/agents/b1", json=GOALS), 201)
        fresh = {"min_position": max(written["position"], own["position"])}
        before = ok(a.get(f"{API}/agents/a1", params=fresh))

        with nothing_written(server):
            for path in (
                f"{API}/agents/a1",
                f"{API}/agents/a1?version=1",
                f"{API}/agents/a1?as_of=2999-01-01T00:00:00Z",
                f"{API}/agents/a1/history",
                f"{API}/analytics/a1",
            ):
                assert problem(b.get(path), 404)["type"] == "/problems/not-found", path
            for method, path, body in (
                ("PUT", f"{API}/agents/a1/progress", PROGRESS),
                ("PUT", f"{API}/agents/a1/status", {"status": "cancelled", "reason": "mine now"}),
                ("POST", f"{API}/agents/a1/auto-update", {"enabled": False}),
                ("PUT", f"{API}/agents/a1/progress", {**PROGRESS, "overall_progress": 99}),
            ):
                refused = b.request(method, path, json=body, headers={"If-Match": str(before["version"])})
                assert problem(refused, 404)["type"] == "/problems/not-found", path
            # a batch naming A's agent is refused exactly as one naming an agent that never existed
            batch_a = b.post(f"{API}/progress:batch", json={"updates": [{"agent_id": "a1", **PROGRESS}]})
            batch_x = b.post(f"{API}/progress:batch", json={"updates": [{"agent_id": "zz", **PROGRESS}]})
            assert batch_a.status_code == batch_x.status_code
            assert batch_a.status_code in (404, 422), batch_a.text
            assert batch_a.json()["detail"] == batch_x.json()["detail"].replace("'zz'", "'a1'")

        listed = ok(b.get(f"{API}/", params=fresh))
        assert [g["agent_id"] for g in listed["items"]] == ["b1"]
        assert listed["total"] == 1
        assert ok(b.get(f"{API}/analytics", params=fresh))["agents_with_goals"] == 1
        assert (
            ok(b.get(f"{API}/agents/b1/history", params=fresh))["items"][0]["actor"] != before["created_by"]
        )

        # B's own "a1" is a different agent: creating it leaves A's untouched
        ok(b.post(f"{API}/agents/a1", json={"goals": {**GOALS["goals"], "purpose_statement": "B's"}}), 201)
        after = ok(a.get(f"{API}/agents/a1", params={"min_position": log_position(server)}))
        assert after == before
        assert [g["agent_id"] for g in ok(a.get(f"{API}/"))["items"]] == ["a1"]


# -- scopes ------------------------------------------------------------------------------------


def test_a_token_without_the_scope_is_refused_with_insufficient_scope(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server()
    _, _, writer = login(server, tenant, READ_WRITE)
    rw_id, rw_secret = server.client(tenant, READ_WRITE)
    _, _, reader = login(server, tenant, READ)
    _, _, write_only = login(server, tenant, ("goals:write",))
    down_scoped = bearer(fetch_token(server, rw_id, rw_secret, scope="goals:read"))
    ok(httpx.post(f"{server.url}{API}/agents/a1", json=GOALS, headers=writer, timeout=30), 201)

    with http(server, {}) as api, nothing_written(server):
        for headers in (reader, down_scoped):
            for method, path, body in (
                ("PUT", f"{API}/agents/a1/progress", PROGRESS),
                ("POST", f"{API}/agents/a2", GOALS),
                ("PUT", f"{API}/agents/a1/status", {"status": "paused"}),
            ):
                refused = api.request(method, path, json=body, headers=headers)
                assert problem(refused, 403)["type"] == "/problems/insufficient-scope"
                assert 'error="insufficient_scope"' in challenge(refused)
                assert 'scope="goals:write"' in challenge(refused)
        refused = api.get(f"{API}/agents/a1", headers=write_only)
        assert problem(refused, 403) and 'scope="goals:read"' in challenge(refused)
        for path in (f"{API}/analytics", f"{ADMIN}/clients", f"{ADMIN}/security/denials"):
            refused = api.get(path, headers=writer)
            assert problem(refused, 403) and 'error="insufficient_scope"' in challenge(refused), path
        assert problem(
            api.post(f"{ADMIN}/clients", json={"name": "x", "scopes": ["admin"]}, headers=writer), 403
        )

    # asking the token endpoint for more than the client was granted
    for scope in ("goals:read admin", "analytics:read", "root"):
        denied = request_token(server, rw_id, rw_secret, scope=scope)
        assert denied.status_code == 400, denied.text
        assert denied.json()["error"] == "invalid_scope"
        assert "access_token" not in denied.json()
        assert denied.headers["cache-control"] == "no-store"


# -- security headers and CORS -----------------------------------------------------------------


def test_responses_carry_security_headers_and_cors_admits_only_the_configured_origin(
    start_server: Callable[..., Server], tenant: str
) -> None:
    allowed, evil = "https://app.example", "https://evil.example"
    server = start_server(CORS_ORIGINS=allowed)
    _, _, headers = login(server, tenant, READ_WRITE)
    with http(server, {}) as api:
        samples = [
            api.get(f"{API}/health"),
            api.get(f"{API}/"),
            api.get(f"{API}/", headers=headers),
            api.post("/oauth/token", data={"grant_type": "password"}),
            api.get("/.well-known/jwks.json"),
        ]
        assert [r.status_code for r in samples] == [200, 401, 200, 401, 200]
        for response in samples:
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "default-src 'none'" in response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

        preflight = {
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        granted = api.options(f"{API}/agents/a1/progress", headers={"Origin": allowed, **preflight})
        assert granted.status_code == 200, granted.text
        assert granted.headers["access-control-allow-origin"] == allowed
        assert "PUT" in granted.headers["access-control-allow-methods"]
        assert "authorization" in granted.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in granted.headers

        refused = api.options(f"{API}/agents/a1/progress", headers={"Origin": evil, **preflight})
        assert refused.status_code >= 400
        assert "access-control-allow-origin" not in refused.headers

        simple = api.get(f"{API}/", headers={**headers, "Origin": allowed})
        assert simple.headers["access-control-allow-origin"] == allowed
        foreign = api.get(f"{API}/", headers={**headers, "Origin": evil})
        assert foreign.status_code == 200
        assert "access-control-allow-origin" not in foreign.headers
