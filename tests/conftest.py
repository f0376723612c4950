"""Shared fixtures: a real PostgreSQL database per session, systems on either store,
unique tenants per test, a real uvicorn server for end-to-end tests, and EVM nodes (anvil)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

from domain.clients import SCOPES
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system

if TYPE_CHECKING:
    from tests.chain_support import PrivateAnvil

ROOT = Path(__file__).resolve().parent.parent
ALL_SCOPES: tuple[str, ...] = tuple(sorted(SCOPES))
# A bound on a server's start: on a 2-core machine shared with other suites, start-up (imports,
# migrations, a first projection pass) has taken over 30 s; one that never answers still fails.
SERVER_START_S = 90


def _require_services() -> bool:
    return os.environ.get("A2A_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        if _require_services():
            pytest.fail("TEST_DATABASE_URL is not set: run the suite with ops/test")
        pytest.skip("PostgreSQL not configured (TEST_DATABASE_URL); ops/test provides one")
    name = f"a2a_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_pg_url(pg_url: str) -> Iterator[str]:
    """A database of the test's own on the session's server, dropped afterwards: for tests whose
    records are not tenant-scoped and would meet other tests' (anchors of several chains that
    share a chain id and a deployer, hence contract addresses)."""
    base, _, _ = pg_url.rpartition("/")
    name = f"a2a_own_{uuid.uuid4().hex[:12]}"
    admin = os.environ["TEST_DATABASE_URL"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings for the store under test; extra keyword arguments override by alias."""

    def make(**overrides: object) -> Settings:
        # ELASTICSEARCH_URL, set for the Elasticsearch tests, is not for every system under test.
        values: dict[str, object] = {
            "APP_ENV": "test",
            "DATA_DIR": str(tmp_path / "data"),
            "ELASTICSEARCH_URL": "",
            "ANCHOR_CHECK_S": "0",  # anchoring rounds write events: only tests that anchor run them
        }
        if store_kind == "postgres":
            values["DATABASE_URL"] = request.getfixturevalue("pg_url")
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def system(make_settings: Callable[..., Settings]) -> Iterator[System]:
    """A system on the store under test; projections run only when a test runs them."""
    built = build_system(make_settings(RUN_PROJECTIONS_IN_PROCESS="false"))
    yield built
    built.close()


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A real `a2a-goals serve` process on a free port."""

    def __init__(self, env: dict[str, str], log: Path, args: Sequence[str] = ()) -> None:
        self.env = env
        self._tokens: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(self.port), *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(log)
        except RuntimeError:
            self.stop()  # no fixture knows of it yet: a server that never answered is not left running
            raise

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/goals/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {log.read_text()}")

    def client(self, tenant: str, scopes: Sequence[str] = ALL_SCOPES) -> tuple[str, str]:
        """Register an OAuth client in this server's store; returns (client_id, secret)."""
        system = build_system(Settings(**{**self.env, "RUN_PROJECTIONS_IN_PROCESS": "false"}))  # type: ignore[arg-type]
        try:
            issued = system.clients.create(tenant, "test", list(scopes), actor="test-setup")
        finally:
            system.close()
        return issued.client_id, issued.client_secret

    def auth_headers(self, tenant: str, scopes: Sequence[str] = ALL_SCOPES) -> dict[str, str]:
        """Authorization headers with a fresh token of a new client of `tenant` (cached)."""
        key = (tenant, tuple(sorted(scopes)))
        if key not in self._tokens:
            client_id, secret = self.client(tenant, scopes)
            answer = httpx.post(
                f"{self.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
                timeout=30,
            )
            answer.raise_for_status()
            self._tokens[key] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        return self._tokens[key]

    def log_text(self) -> str:
        """What the server has written to its stdout and stderr so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(*args: str, **env: str) -> Server:
        """A server with `env` over the test defaults; `args` go to `serve` (`--workers 2`)."""
        # No reachability checks unless a test asks: they would write events of their own
        # into logs that tests count (test_reachability sets REACHABILITY_CHECK_S).
        base = {
            "APP_ENV": "test",
            "DATA_DIR": str(tmp_path / "server-data"),
            "ELASTICSEARCH_URL": "",
            "REACHABILITY_CHECK_S": "0",
            # Nor rounds of anchoring, which write events of their own (tests that anchor set it).
            "ANCHOR_CHECK_S": "0",
        }
        server = Server({**base, **env}, tmp_path / f"server-{len(servers)}.log", args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def rpc_url() -> str:
    """The JSON-RPC URL of the shared test chain (TEST_RPC_URL; ops/test starts an anvil)."""
    url = os.environ.get("TEST_RPC_URL")
    if not url:
        if _require_services():
            pytest.fail("TEST_RPC_URL is not set: run the suite with ops/test")
        pytest.skip("no EVM node configured (TEST_RPC_URL); ops/test starts anvil")
    return url


@pytest.fixture
def start_anvil(tmp_path: Path) -> Iterator[Callable[[], PrivateAnvil]]:
    """Starts anvils of the test's own, each with a state file in tmp_path; stopped afterwards."""
    from tests.chain_support import PrivateAnvil  # it imports this module

    nodes: list[PrivateAnvil] = []

    def start() -> PrivateAnvil:
        node = PrivateAnvil(tmp_path / f"anvil-{len(nodes)}-state.json")
        nodes.append(node)
        node.start()
        return node

    yield start
    for node in nodes:
        node.stop()
