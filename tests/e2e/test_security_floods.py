"""Bad bearer tokens against a running server: a refusal never waits on the store, so one
bad token cannot hold the other requests of the process while the store is busy."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from tests.conftest import Server
from tests.e2e.test_security import (
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
