"""The audit log over HTTP and the CLI, on SQLite and PostgreSQL: a tenant fetches a proof of
its event and checks it with nothing but hashlib (a verifier written here from RFC 9162, not
the project's); another tenant's event does not exist for it; a stored event changed behind
the system's back makes `audit verify` fail naming its position."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from infrastructure.settings import Settings
from interfaces.bootstrap import build_system
from tests.conftest import ROOT, Server
from tests.e2e.support import ok, problem
from tests.e2e.test_seed_commands import GOALS

AUDIT = "/api/v1/audit"


def rfc9162_root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2, written out again: the root an inclusion path leads to."""
    assert index < size
    fn, sn, r = index, size - 1, hashlib.sha256(b"\x00" + leaf).digest()
    for p in path:
        assert sn != 0
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn //= 2
        sn //= 2
    assert sn == 0
    return r


def _wait_for_proof(api: httpx.Client, position: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = api.get(f"{AUDIT}/events/{position}/proof")
        if answer.status_code == 200:
            body: dict[str, Any] = answer.json()
            return body
        assert answer.status_code == 404, answer.text
        time.sleep(0.1)
    raise AssertionError(f"position {position} was never leafed")


def _audit_cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server.env, "RUN_PROJECTIONS_IN_PROCESS": "false"}
    return subprocess.run(
        [sys.executable, "-m", "interfaces.cli.main", "audit", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


class StoredRow:
    """One stored event's payload, changed and put back directly in the event store."""

    def __init__(self, server: Server, position: int) -> None:
        self._settings = Settings(**{**server.env, "RUN_PROJECTIONS_IN_PROCESS": "false"})  # type: ignore[arg-type]
        self._position = position
        system = build_system(self._settings)
        try:
            recorder: Any = system.goals.recorder
            table = recorder.events_table_name
            schema = getattr(getattr(recorder, "datastore", None), "schema", "")
            self._table = f'"{schema}"."{table}"' if self._settings.is_postgres and schema else table
        finally:
            system.close()

    def _run(self, sql: str, params: tuple[Any, ...]) -> Any:
        if self._settings.is_postgres:
            with psycopg.connect(self._settings.database_url, autocommit=True) as conn:
                row = conn.execute(sql.replace("?", "%s"), params).fetchone() if "SELECT" in sql else None
                if "SELECT" not in sql:
                    conn.execute(sql.replace("?", "%s"), params)
                return row
        with sqlite3.connect(self._settings.events_path) as conn:  # the notification id is the rowid
            return conn.execute(sql.replace("notification_id", "rowid"), params).fetchone()

    def state(self) -> bytes:
        return bytes(self._run(f"SELECT state FROM {self._table} WHERE notification_id = ?", (self._position,))[0])

    def put(self, state: bytes) -> None:
        self._run(f"UPDATE {self._table} SET state = ? WHERE notification_id = ?", (state, self._position))


def test_a_proof_checks_with_hashlib_alone_and_a_changed_row_fails_verify(
    store_kind: str, start_server: Callable[..., Server], request: pytest.FixtureRequest
) -> None:
    env = {"OPERATOR_TENANT": "ops"}
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    server = start_server(**env)
    mine, theirs = f"a{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}"
    with (
        httpx.Client(base_url=server.url, headers=server.auth_headers(mine), timeout=30) as api,
        httpx.Client(base_url=server.url, headers=server.auth_headers(theirs), timeout=30) as other,
    ):
        written = ok(api.post("/api/v1/goals/agents/audited", json=GOALS), 201)
        their_write = ok(other.post("/api/v1/goals/agents/elsewhere", json=GOALS), 201)
        position = written["position"]

        proof = _wait_for_proof(api, position)
        leaf = bytes.fromhex(proof["leaf_data"])
        assert leaf[0] == 1 and int.from_bytes(leaf[1:9], "big") == position
        assert hashlib.sha256(b"\x00" + leaf).hexdigest() == proof["leaf_hash"]
        path = [bytes.fromhex(h) for h in proof["inclusion_proof"]]
        recomputed = rfc9162_root_from_path(proof["leaf_index"], proof["tree_size"], leaf, path)
        assert recomputed.hex() == proof["root_hash"]
        assert [proof[k] for k in ("tx_hash", "block_number", "contract", "chain_id")] == [None] * 4

        # roots are public; their events are not
        assert ok(api.get(f"{AUDIT}/root"))["tree_size"] >= proof["tree_size"]
        _wait_for_proof(other, their_write["position"])
        problem(api.get(f"{AUDIT}/events/{their_write['position']}/proof"), 404)
        problem(other.get(f"{AUDIT}/events/{position}/proof"), 404)
        ops = server.auth_headers("ops", scopes=["admin", "audit:read"])
        seen = ok(httpx.get(f"{server.url}{AUDIT}/events/{their_write['position']}/proof", headers=ops))
        assert seen["leaf_index"] > proof["leaf_index"]
        no_scope = server.auth_headers(mine, scopes=["goals:read"])
        assert httpx.get(f"{server.url}{AUDIT}/root", headers=no_scope).status_code == 403

        beyond = problem(api.get(f"{AUDIT}/events/{position}/proof", params={"tree_size": 10**9}), 422)
        assert beyond["errors"][0]["field"] == "query.tree_size"
        bad = problem(api.get(f"{AUDIT}/consistency", params={"first": -1, "second": 2}), 422)
        assert bad["errors"][0]["field"] == "query.first"
        size = proof["tree_size"]
        earlier = ok(api.get(f"{AUDIT}/events/{position}/proof", params={"tree_size": proof["leaf_index"] + 1}))
        steps = ok(api.get(f"{AUDIT}/consistency", params={"first": earlier["tree_size"], "second": size}))
        assert (steps["first_root"], steps["second_root"]) == (earlier["root_hash"], proof["root_hash"])

    checked = _audit_cli(server, "verify")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("OK:")
    printed = _audit_cli(server, "proof", str(position))
    assert printed.returncode == 0, printed.stderr
    assert f'"leaf_hash": "{proof["leaf_hash"]}"' in printed.stdout

    row = StoredRow(server, position)
    original = row.state()
    changed = original.replace(b"audited", b"tampere_")  # the agent's id, as stored
    assert changed != original
    row.put(changed)
    try:
        tampered = _audit_cli(server, "verify")
        assert tampered.returncode == 1
        assert f"BAD at position {position}" in tampered.stderr
        assert "leaf hash" in tampered.stderr
    finally:
        row.put(original)  # the PostgreSQL database is shared by the session's tests
