"""Attacks on a running server: floods and oversized bodies. One client flooding reads or writes
is limited (429 with Retry-After and RateLimit-* headers), writes nothing while limited, recovers
after Retry-After, and never slows another client down; with the in-process limiter and with the
real Redis (TEST_REDIS_URL), where replicas share one budget. Secret guessing at the token
endpoint is throttled the same way, and a body over MAX_BODY_BYTES is refused unread."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import Server
from tests.e2e.test_security import (
    ADMIN,
    API,
    GOALS,
    PROGRESS,
    READ_WRITE,
    bearer,
    http,
    log_position,
    login,
    nothing_written,
    ok,
    problem,
    request_token,
)

FLOOD = 30
Call = tuple[str, str, dict[str, Any] | None]


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    return url


@pytest.fixture(params=["in-process", "redis"])
def limiter(request: pytest.FixtureRequest) -> dict[str, str]:
    """Server environment selecting the rate limiter under test."""
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {}


def flood(server: Server, headers: dict[str, str], calls: list[Call]) -> list[httpx.Response]:
    """All calls at once, from one client."""
    with http(server, headers) as api, ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda c: api.request(c[0], c[1], json=c[2]), calls))


def assert_limited(response: httpx.Response, limit: int) -> int:
    """A well-formed 429; returns its Retry-After in seconds."""
    assert problem(response, 429)["type"] == "/problems/rate-limited"
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) >= 1
    return retry_after


@pytest.mark.parametrize("kind", ["writes", "reads"])
def test_a_flood_is_limited_writes_nothing_spares_other_clients_and_recovers(
    limiter: dict[str, str], kind: str, start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(**limiter, **{f"RATE_LIMIT_{kind.upper()}": "5/second"})
    flooder, _, flooder_headers = login(server, tenant, READ_WRITE)
    _, _, bystander_headers = login(server, tenant, READ_WRITE)
    start = log_position(server)
    ok(httpx.post(f"{server.url}{API}/agents/a1", json=GOALS, headers=bystander_headers, timeout=30), 201)
    per_creation = log_position(server) - start  # events one creation appends

    def call(i: int) -> Call:
        return (
            ("POST", f"{API}/agents/f{i}", GOALS) if kind == "writes" else ("GET", f"{API}/agents/a1", None)
        )

    success = 201 if kind == "writes" else 200
    before = log_position(server)
    answers = flood(server, flooder_headers, [call(i) for i in range(FLOOD)])
    if "REDIS_URL" in limiter:  # the budget really lives in Redis (its key expires within a second)
        assert redis.Redis.from_url(limiter["REDIS_URL"]).keys(f"*{flooder}*")

    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {success, 429}, statuses
    limited = [a for a in answers if a.status_code == 429]
    assert limited, f"no request of {FLOOD} was limited"
    assert statuses.count(success) >= 1
    waits = [assert_limited(a, 5) for a in limited]

    with http(server, bystander_headers) as bystander:
        # another client of the same tenant is not held back by the flood
        method, path, body = call(FLOOD)
        spared = bystander.request(method, path, json=body)
        assert spared.status_code == success, spared.text
        if kind == "writes":
            # the refused wrote nothing: the log grew by the accepted creations and the bystander's
            assert log_position(server) - before == per_creation * (statuses.count(201) + 1)
            for i, status in enumerate(statuses):
                if status == 429:
                    assert problem(bystander.get(f"{API}/agents/f{i}"), 404)

    time.sleep(max(waits))  # then the flooder is let through again
    method, path, body = call(FLOOD + 1)
    with http(server, flooder_headers) as api:
        again = api.request(method, path, json=body)
    assert again.status_code == success, again.text


def test_replicas_sharing_redis_share_one_budget(
    redis_url: str, pg_url: str, start_server: Callable[..., Server], tenant: str
) -> None:
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "RATE_LIMIT_WRITES": "3/minute"}
    first, second = start_server(**env), start_server(**env)
    _, _, headers = login(first, tenant, READ_WRITE)
    for i in range(3):
        ok(httpx.post(f"{first.url}{API}/agents/r{i}", json=GOALS, headers=headers, timeout=30), 201)
    with nothing_written(second):
        refused = httpx.post(f"{second.url}{API}/agents/r3", json=GOALS, headers=headers, timeout=30)
        assert assert_limited(refused, 3) > 1


def test_guessing_a_secret_at_the_token_endpoint_is_throttled(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(RATE_LIMIT_TOKEN="3/minute")
    _, _, admin = login(server, tenant, ("admin",))
    target, secret = server.client(tenant, READ_WRITE)
    other, other_secret = server.client(tenant, READ_WRITE)
    guesses = [request_token(server, target, f"guess-{i}") for i in range(3)]
    assert [g.status_code for g in guesses] == [401, 401, 401]
    throttled = request_token(server, target, "guess-3")
    assert_limited(throttled, 3)
    assert "access_token" not in throttled.text
    # even the right secret waits now (from this address), and nobody else is affected
    assert request_token(server, target, secret).status_code == 429
    token = ok(request_token(server, other, other_secret))["access_token"]
    assert ok(httpx.get(f"{server.url}{API}/", headers=bearer(token), timeout=30))["total"] == 0
    # the tenant's admins see the guesses, and the two throttled requests as one denial
    denials = ok(httpx.get(f"{server.url}{ADMIN}/security/denials", headers=admin, timeout=30))["items"]
    about_target = [(d["kind"], d["detail"].get("reason")) for d in denials if d["client_id"] == target]
    assert sorted(about_target, key=str) == sorted(
        [("rate_limited", None)] + [("token_denied", "bad_credentials")] * 3, key=str
    )


def resident_mib(server: Server) -> float:
    """The server process's resident memory (it serves in that process: one worker)."""
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kib / 1024


def test_huge_client_ids_sent_to_the_token_endpoint_are_not_kept(
    start_server: Callable[..., Server],
) -> None:
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as anyone:
        form = {"grant_type": "client_credentials", "client_secret": "guess"}
        assert anyone.post("/oauth/token", data={**form, "client_id": "warm-up"}).status_code == 401
        before = resident_mib(server)
        for i in range(100):  # 100 ids of 1,000,000 characters, within MAX_BODY_BYTES
            sent = anyone.post("/oauth/token", data={**form, "client_id": f"{i:03d}" + "x" * 1_000_000})
            assert sent.status_code in {401, 429}, sent.text
        grown = resident_mib(server) - before
    # each id kept as a rate-limit key would hold 1 MB: 100 MB
    assert grown < 40, f"the server grew by {grown:.0f} MiB"


# -- body size ---------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_with_413_and_writes_nothing(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(MAX_BODY_BYTES="2048")
    client_id, secret, headers = login(server, tenant, READ_WRITE)
    fits = {"goals": {**GOALS["goals"], "purpose_statement": "x" * 1500}}
    big = {"goals": {**GOALS["goals"], "success_criteria": ["y" * 200] * 20}}
    batch = {"updates": [{"agent_id": f"a{i}", **PROGRESS} for i in range(100)]}

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b" " * 512  # valid JSON whitespace, but too much of it and no Content-Length

    with http(server, headers) as api:
        with nothing_written(server):
            for response in (
                api.post(f"{API}/agents/big", json=big),
                api.post(f"{API}/progress:batch", json=batch),
                api.post(
                    f"{API}/agents/chunked", content=chunks(), headers={"Content-Type": "application/json"}
                ),
                httpx.post(
                    f"{server.url}/oauth/token",
                    data={"grant_type": "client_credentials", "scope": "goals:read " * 300},
                    auth=(client_id, secret),
                    timeout=30,
                ),
            ):
                assert problem(response, 413)["type"] == "/problems/body-too-large"
                assert response.headers["x-content-type-options"] == "nosniff"
                assert "access_token" not in response.text
        assert problem(api.get(f"{API}/agents/big"), 404)
        assert ok(api.post(f"{API}/agents/fits", json=fits), 201)["created"] is True
