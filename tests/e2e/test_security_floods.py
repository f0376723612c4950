"""Bad bearer tokens against a running server: a refusal never waits on the store, so one
bad token cannot hold the other requests of the process while the store is busy. Callers
sharing an address are held back only by tokens that failed their signature check there:
never by garbage (refused before any check) nor by valid tokens; past that budget the
address's new tokens are refused unchecked, its verified tokens still work, and the flood is
one listed denial per address, not a row per request."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from infrastructure.settings import Settings
from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import TokenIssuer
from tests.conftest import Server
from tests.e2e.test_security import (
    ADMIN,
    API,
    GOALS,
    READ_WRITE,
    bearer,
    challenge,
    eventually,
    http,
    login,
    ok,
    problem,
)

BAD_TOKENS = 10  # signature checks that may fail per address and hour


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


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def minted(server: Server, tenant: str, count: int) -> list[str]:
    """`count` valid tokens of a new client of `tenant`, signed with the server's own keys."""
    client_id, _ = server.client(tenant, READ_WRITE)
    settings = Settings(**server.env)  # type: ignore[arg-type]
    ring = KeyRing.load_or_create(settings.keys_path)
    issuer = TokenIssuer(ring, issuer=settings.token_issuer, audience=settings.token_audience)
    return [issuer.issue(client_id, tenant, READ_WRITE)[0] for _ in range(count)]


def lookalike(token: str) -> str:
    """A token of the same form, kid and claims as `token`, with a signature of random bytes."""
    signed, _, signature = token.rpartition(".")
    return f"{signed}.{b64url(secrets.token_bytes(len(base64.urlsafe_b64decode(signature + '==='))))}"


def test_bad_tokens_from_a_shared_address_hold_back_only_new_tokens_and_only_once_checks_failed(
    start_server: Callable[..., Server], tenant: str
) -> None:
    operators = f"{tenant}-ops"
    server = start_server(OPERATOR_TENANT=operators, RATE_LIMIT_BAD_TOKENS=f"{BAD_TOKENS}/hour")
    _, _, ops_admin = login(server, operators, ("admin",))
    tokens = minted(server, tenant, 4 * BAD_TOKENS + 2)
    verified_before, valid_new, elsewhere = tokens[-3:]
    with http(server, {}) as shared:  # everyone behind one address, as behind a NAT
        assert ok(shared.get(f"{ADMIN}/security/denials", headers=ops_admin))["items"] == []
        # garbage costs no signature check: refused, however much, and never held against anyone
        statuses = {
            shared.get(f"{API}/agents/a1", headers=bearer(f"garbage-{i}")).status_code for i in range(30)
        }
        assert statuses == {401}
        # nor are valid tokens, each used here for the first time
        for token in tokens[: 4 * BAD_TOKENS]:
            assert problem(shared.get(f"{API}/agents/a1", headers=bearer(token)), 404)
        assert problem(shared.get(f"{API}/agents/a1", headers=bearer(verified_before)), 404)
        # tokens that look like ours fail their check: past the budget, they are refused unchecked
        forged = [shared.get(f"{API}/agents/a1", headers=bearer(lookalike(token))) for token in tokens[:30]]
        statuses_in_order = [f.status_code for f in forged]
        assert statuses_in_order == [401] * BAD_TOKENS + [429] * (30 - BAD_TOKENS), statuses_in_order
        assert 'error_description="bad_signature"' in challenge(forged[0])
        assert int(forged[-1].headers["retry-after"]) >= 1
        # ...and so is a valid token the address presents for the first time while it is
        # held back: it cannot be told from a forgery without the check the budget spares
        assert problem(shared.get(f"{API}/agents/a1", headers=bearer(valid_new)), 429)
        # what the address had verified before still works
        assert problem(shared.get(f"{API}/agents/a1", headers=bearer(verified_before)), 404)
        denials = ok(shared.get(f"{ADMIN}/security/denials", headers=ops_admin))["items"]
    # and another address's new token is verified as usual
    other_address = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=server.url, transport=other_address, timeout=30) as other:
        assert problem(other.get(f"{API}/agents/a1", headers=bearer(elsewhere)), 404)
    flood = [d for d in denials if d["client_id"] is None]
    # one row per kind and address: each the first of its kind, the next would tell the repeats
    assert sorted(d["kind"] for d in flood) == ["auth_denied", "rate_limited"], flood
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
