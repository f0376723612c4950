"""Reachability of registered agents, with a real loopback server playing the agent: the
registry shows it reachable, then unreachable with the error once it is stopped, then reachable
again once it is back; the `reachable` search filter finds it each time; a check that changes
nothing records no event; another tenant's agents are never listed. On the embedded default
(jobs in the server) and on PostgreSQL with a Redis broker, a worker and a scheduler."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Server, free_port
from tests.e2e.support import login, ok
from tests.e2e.test_jobs import jobs_env, redis_url, start_process  # noqa: F401 (fixtures)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "a2a"
AGENTS = "/api/v1/agents"
WAIT_S = 60.0  # a bound: checks run every second


class AgentServer:
    """An agent's own HTTP server on a fixed loopback port, answering its card; stopped and
    started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.card: dict[str, Any] = {}
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path == "/.well-known/agent-card.json"
                body = json.dumps(served.card if found else {}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@pytest.fixture
def own_database(pg_url: str) -> Iterator[str]:
    """A database of this test's own: the checks cover every agent of a registry, and the
    session's shared one holds other tests' agents."""
    name = f"a2a_reach_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{pg_url.rpartition('/')[0]}/{name}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def agent() -> Iterator[AgentServer]:
    served = AgentServer()
    served.start()
    yield served
    served.stop()


def card(name: str, url: str) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads((FIXTURES / "sample-card-v1.0.json").read_text())
    interfaces = [{**sample["supportedInterfaces"][0], "url": url}]
    return {**sample, "name": name, "supportedInterfaces": interfaces}


@dataclass
class Registry:
    server: Server
    metrics_url: str  # where the process that runs the checks serves its metrics


def wait_for(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {WAIT_S} s")


def reachability(client: httpx.Client, agent_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ok(client.get(f"{AGENTS}/{agent_id}"))["reachability"]
    return found


def found(client: httpx.Client, reachable: bool) -> set[str]:
    page = ok(client.get(AGENTS, params={"reachable": str(reachable).lower(), "limit": 100}))
    return {a["card"]["name"] for a in page["items"]}


def reachability_events(client: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    items = ok(client.get(f"{AGENTS}/{agent_id}/history"))["items"]
    return [i for i in items if i["event"] == "ReachabilityChanged"]


def checked_after(client: httpx.Client, agent_id: str, previous: str) -> str:
    """Wait for the next check of the agent: its last_checked moves on."""
    at: str = wait_for(
        "checked again", lambda: (c := reachability(client, agent_id)["last_checked"]) != previous and c
    )
    return at


def unreachable_gauge(metrics_url: str) -> float | None:
    with contextlib.suppress(httpx.TransportError):
        for line in httpx.get(metrics_url, timeout=5).text.splitlines():
            if line.startswith("a2a_registry_unreachable_agents "):
                return float(line.split()[1])
    return None


def scenario(registry: Registry, agent: AgentServer, tenant: str) -> None:
    server = registry.server
    _, mine = login(server, tenant)
    _, theirs = login(server, tenant + "x")
    nobody = f"http://127.0.0.1:{free_port()}/a2a"  # nothing listens there
    agent.card = card("Reached", f"{agent.url}/a2a/v1")
    with (
        httpx.Client(base_url=server.url, headers=mine, timeout=30) as me,
        httpx.Client(base_url=server.url, headers=theirs, timeout=30) as other,
    ):
        ok(me.post(AGENTS, json={"agent_id": "reached", "card": agent.card}), 201)
        ok(me.post(AGENTS, json={"agent_id": "down", "card": card("Down", nobody)}), 201)
        last = ok(other.post(AGENTS, json={"agent_id": "theirs", "card": card("Theirs", nobody)}), 201)
        ok(other.get(f"{AGENTS}/theirs", params={"min_position": last["position"]}))  # all three are read

        first = wait_for("reachable", lambda: (r := reachability(me, "reached"))["reachable"] and r)
        assert first["last_error"] is None and first["last_checked"] and first["since"]
        down = wait_for("down", lambda: (r := reachability(me, "down"))["reachable"] is False and r)
        assert down["last_error"].startswith("unreachable: ")
        assert wait_for("search", lambda: found(me, True) == {"Reached"} and found(me, False) == {"Down"})
        assert found(other, False) == {"Theirs"} and found(other, True) == set()

        # Checks go on; while nothing changes, none of them records an event.
        checked = first["last_checked"]
        for _ in range(2):
            checked = checked_after(me, "reached", checked)
        assert [e["changes"][0]["to"] for e in reachability_events(me, "reached")] == [True]

        agent.stop()
        lost = wait_for("unreachable", lambda: (r := reachability(me, "reached"))["reachable"] is False and r)
        assert lost["last_error"].startswith("unreachable: ")
        assert wait_for("search", lambda: found(me, False) == {"Reached", "Down"} and not found(me, True))
        assert wait_for("gauge", lambda: unreachable_gauge(registry.metrics_url) == 3)

        agent.start()
        back = wait_for("reachable again", lambda: (r := reachability(me, "reached"))["reachable"] and r)
        assert back["last_error"] is None
        assert wait_for("search", lambda: found(me, True) == {"Reached"} and found(me, False) == {"Down"})
        assert wait_for("gauge", lambda: unreachable_gauge(registry.metrics_url) == 2)
        events = reachability_events(me, "reached")
        assert [(e["changes"][0]["to"], e["actor"]) for e in events] == [
            (True, "reachability"),
            (False, "reachability"),
            (True, "reachability"),
        ]
        assert events[1]["changes"][0]["error"].startswith("unreachable: ")
        assert found(other, True) == set() and found(other, False) == {"Theirs"}

        # A deregistered agent is checked no more: it leaves the count of unreachable agents.
        ok(me.request("DELETE", f"{AGENTS}/down"))
        assert wait_for("gauge", lambda: unreachable_gauge(registry.metrics_url) == 1)


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"], indirect=True)
def test_reachability_on_the_embedded_default(
    start_server: Callable[..., Server],
    store_kind: str,
    request: pytest.FixtureRequest,
    agent: AgentServer,
    tenant: str,
) -> None:
    env = {"OUTBOUND_ALLOW_NETS": "127.0.0.0/8", "REACHABILITY_CHECK_S": "1"}
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("own_database")
    server = start_server(**env)
    scenario(Registry(server, f"{server.url}/metrics/"), agent, tenant)


@pytest.mark.parametrize("store_kind", ["postgres"], indirect=True)
def test_reachability_with_a_redis_broker_a_worker_and_a_scheduler(
    start_server: Callable[..., Server],
    jobs_env: dict[str, str],  # noqa: F811
    own_database: str,
    start_process: Callable[..., subprocess.Popen[bytes]],  # noqa: F811
    agent: AgentServer,
    tenant: str,
) -> None:
    env = {
        **jobs_env,
        "DATABASE_URL": own_database,
        "OUTBOUND_ALLOW_NETS": "127.0.0.0/8",
        "REACHABILITY_CHECK_S": "1",
    }
    server = start_server(**env)
    port = free_port()
    start_process(env, "worker", "--threads", "2", "--metrics-port", str(port))
    start_process(env, "scheduler")
    scenario(Registry(server, f"http://127.0.0.1:{port}/metrics"), agent, tenant)
