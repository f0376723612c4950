"""Fixtures of the end-to-end tests: a server on the store under test and a logged-in client.
A test module may define its own `server` or `api` to change them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
