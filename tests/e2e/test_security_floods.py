"""Bad bearer tokens against a running server: a refusal never waits on the store, so one
bad token cannot hold the other requests of the process while the store is busy; a flood of
them from one address is one listed denial per address, not a row per request, and is
refused per address before any verification, while the address's verified tokens still work."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from tests.conftest import Server
from tests.e2e.test_security import (
    ADMIN,
    API,
    GOALS,
    READ_WRITE,
    bearer,
    eventually,
    http,
    login,
    ok,
    problem,
)


def waiting_for(pg_url: str, table: str) -> bool:
    """Whether some session waits for a lock on `table`."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE c.relname = %s AND NOT l.granted",
            (table,),
        ).fetchone()
    return row is not None and row[0] > 0


def test_a_bad_token_does_not_hold_other_requests_while_the_store_is_busy(
    pg_url: str, start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(DATABASE_URL=pg_url)
    _, _, headers = login(server, tenant, READ_WRITE)
    with http(server, headers) as api:
        position = ok(api.post(f"{API}/agents/a1", json=GOALS), 201)["position"]
        ok(api.get(f"{API}/agents/a1", params={"min_position": position}))
        with psycopg.connect(pg_url) as busy, ThreadPoolExecutor(1) as pool:
            # the denials table is locked, as by a long transaction: recording a denial waits
            busy.execute("LOCK TABLE security_events IN ACCESS EXCLUSIVE MODE")
            garbage = pool.submit(
                httpx.get, f"{server.url}{API}/agents/a1", headers=bearer("garbage"), timeout=30
            )
            assert eventually(lambda: waiting_for(pg_url, "security_events"), within_s=10)
            # while that record waits, the process answers everyone else, and the refusal
            assert ok(api.get(f"{API}/agents/a1", timeout=10))["agent_id"] == "a1"
            assert problem(garbage.result(timeout=10), 401)
            busy.rollback()


def test_a_flood_of_bad_tokens_is_one_denial_and_is_refused_per_address_before_verification(
    start_server: Callable[..., Server], tenant: str
) -> None:
    operators = f"{tenant}-ops"
    server = start_server(OPERATOR_TENANT=operators, RATE_LIMIT_NEW_TOKENS="10/minute")
    _, _, ops_admin = login(server, operators, ("admin",))
    with http(server, {}) as flooder:
        assert ok(flooder.get(f"{ADMIN}/security/denials", headers=ops_admin))["items"] == []
        statuses = [
            flooder.get(f"{API}/agents/a1", headers=bearer(f"garbage-{i}")).status_code for i in range(30)
        ]
        # bad tokens are refused, then the address is: the rest are never verified
        assert statuses[0] == 401 and statuses[-1] == 429, statuses
        assert statuses == sorted(statuses), statuses
        refused = flooder.get(f"{API}/agents/a1", headers=bearer("garbage-again"))
        assert problem(refused, 429)["type"] == "/problems/rate-limited"
        assert int(refused.headers["retry-after"]) >= 1
        # a token this address had verified before still works
        denials = ok(flooder.get(f"{ADMIN}/security/denials", headers=ops_admin))["items"]
    # and another address's new token is verified as usual
    _, _, newcomer = login(server, tenant, READ_WRITE)
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=server.url, transport=elsewhere, headers=newcomer, timeout=30) as other:
        assert problem(other.get(f"{API}/agents/a1"), 404)["type"] == "/problems/not-found"
    flood = [d for d in denials if d["client_id"] is None]
    assert sorted(d["kind"] for d in flood) == ["auth_denied", "rate_limited"], flood
    # ...each the first of its kind, and the next row of the address tells how many it stands for
    assert {d["detail"].get("repeated") for d in flood} == {None}


def test_a_client_asking_again_and_again_beyond_its_scopes_is_limited_like_any_other(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(RATE_LIMIT_WRITES="3/minute")
    reader, _, headers = login(server, tenant, ("goals:read",))
    _, _, admin = login(server, tenant, ("admin",))
    with http(server, headers) as api:
        statuses = [api.post(f"{API}/agents/a{i}", json=GOALS).status_code for i in range(6)]
        assert statuses == [403, 403, 403, 429, 429, 429]
        denials = ok(api.get(f"{ADMIN}/security/denials", headers=admin))["items"]
    assert sorted(d["kind"] for d in denials if d["client_id"] == reader) == [
        "rate_limited",
        "scope_denied",
        "scope_denied",
        "scope_denied",
    ]
