"""Fixtures of the end-to-end tests: a server on the store under test and a logged-in client.
A test module may define its own `server` or `api` to change them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.support import API, login


@pytest.fixture
def server(store_kind: str, start_server: Callable[..., Server], request: pytest.FixtureRequest) -> Server:
    """A fresh server on the store under test."""
    env: dict[str, str] = {}
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    return start_server(**env)


@pytest.fixture
def caller(server: Server, tenant: str) -> tuple[str, dict[str, str]]:
    """The client this test acts as, in its own tenant: (client id, Authorization headers)."""
    return login(server, tenant)


@pytest.fixture
def actor(caller: tuple[str, dict[str, str]]) -> str:
    """Who the events are recorded as: the token's client id."""
    return caller[0]


@pytest.fixture
def api(server: Server, caller: tuple[str, dict[str, str]]) -> Iterator[httpx.Client]:
    """A client of the server, authenticated with the caller's token."""
    with httpx.Client(base_url=f"{server.url}{API}", headers=caller[1], timeout=30) as client:
        yield client


class Files(BaseHTTPRequestHandler):
    documents: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.documents.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def files() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A real HTTP server on loopback serving `documents` by path."""
    documents: dict[str, bytes] = {}
    handler = type("Handler", (Files,), {"documents": documents})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", documents
    httpd.shutdown()
