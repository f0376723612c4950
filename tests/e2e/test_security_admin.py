"""Attacks on a running server: client administration across tenants, the denials log,
a disabled client's live tokens and credentials, and secrets kept out of the server's log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ALL_SCOPES, Server
from tests.e2e.test_security import (
    ADMIN,
    API,
    GOALS,
    PROGRESS,
    READ,
    READ_WRITE,
    bearer,
    challenge,
    eventually,
    fetch_token,
    http,
    login,
    nothing_written,
    ok,
    problem,
    request_token,
    store_env,
)

# -- client administration ---------------------------------------------------------------------


def test_admin_manages_only_its_own_tenant_and_never_sees_secrets(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server()
    other = f"{tenant}-b"
    admin_id, admin_secret, admin = login(server, tenant, ("admin",))
    b_admin_id, b_admin_secret, b_admin = login(server, other, ("admin",))
    secrets = [admin_secret, b_admin_secret]
    with http(server, admin) as a, http(server, b_admin) as b:
        # a tenant smuggled into the body is refused, naming it: the tenant is the token's
        smuggled = a.post(f"{ADMIN}/clients", json={"name": "bot", "scopes": list(READ), "tenant": other})
        assert [e["field"] for e in problem(smuggled, 422)["errors"]] == ["body.tenant"]
        made = ok(a.post(f"{ADMIN}/clients", json={"name": "bot", "scopes": list(READ)}), 201)
        assert made["tenant"] == tenant
        bot, bot_secret = made["client_id"], made["client_secret"]
        secrets.append(bot_secret)
        assert fetch_token(server, bot, bot_secret)

        # B's admin cannot disable or rotate A's client: not found, as if it did not exist
        with nothing_written(server):
            for action in ("disable", "rotate-secret"):
                denied = b.post(f"{ADMIN}/clients/{bot}/{action}", json={})
                assert problem(denied, 404)["type"] == "/problems/not-found"
                assert "client_secret" not in denied.text
        assert fetch_token(server, bot, bot_secret)
        assert bot not in {c["client_id"] for c in ok(b.get(f"{ADMIN}/clients"))["items"]}

        rotated = ok(a.post(f"{ADMIN}/clients/{bot}/rotate-secret"))
        secrets.append(rotated["client_secret"])
        assert request_token(server, bot, bot_secret).status_code == 401
        assert fetch_token(server, bot, rotated["client_secret"])
        assert problem(a.post(f"{ADMIN}/clients/not-a-client/disable", json={}), 422)
        assert problem(a.post(f"{ADMIN}/clients", json={"name": "x", "scopes": ["root"]}), 422)

        for listing, own, foreign in ((a, {admin_id, bot}, b_admin_id), (b, {b_admin_id}, admin_id)):

            def listed(listing: httpx.Client = listing, own: set[str] = own) -> bool:
                return {c["client_id"] for c in ok(listing.get(f"{ADMIN}/clients"))["items"]} == own

            assert eventually(listed)
            answer = listing.get(f"{ADMIN}/clients")
            items = ok(answer)["items"]
            assert foreign not in answer.text
            assert not {key for c in items for key in c} & {"client_secret", "secret", "secret_hash", "hash"}
            assert "scrypt" not in answer.text
            assert not [s for s in secrets if s in answer.text]


# -- the denials log ---------------------------------------------------------------------------


def test_denials_list_the_tenants_own_refusals_only(start_server: Callable[..., Server], tenant: str) -> None:
    server = start_server(RATE_LIMIT_WRITES="2/minute")
    other = f"{tenant}-b"
    reader_id, _, reader = login(server, tenant, READ)
    writer_id, writer_secret, writer = login(server, tenant, READ_WRITE)
    _, _, admin = login(server, tenant, ("admin",))
    b_reader_id, _, b_reader = login(server, other, READ)
    _, _, b_admin = login(server, other, ("admin",))

    with http(server, {}) as api:
        scope_rid = "scope-denied-0001"
        refused = api.put(
            f"{API}/agents/a1/progress", json=PROGRESS, headers={**reader, "X-Request-ID": scope_rid}
        )
        assert problem(refused, 403)
        assert request_token(server, writer_id, writer_secret, scope="admin").status_code == 400
        statuses = [api.post(f"{API}/agents/w{i}", json=GOALS, headers=writer).status_code for i in range(3)]
        assert statuses == [201, 201, 429]
        assert problem(api.get(f"{API}/analytics", headers=b_reader), 403)

        a_answer = api.get(f"{ADMIN}/security/denials", headers=admin)
        mine = ok(a_answer)["items"]
        kinds = {(d["kind"], d["client_id"]) for d in mine}
        assert ("scope_denied", reader_id) in kinds
        assert ("rate_limited", writer_id) in kinds
        assert ("token_denied", writer_id) in kinds
        assert {d["tenant"] for d in mine} == {tenant}
        assert scope_rid in {d["request_id"] for d in mine}
        assert b_reader_id not in a_answer.text and writer_secret not in a_answer.text

        b_answer = api.get(f"{ADMIN}/security/denials", headers=b_admin)
        theirs = ok(b_answer)["items"]
        assert {(d["kind"], d["client_id"]) for d in theirs} == {("scope_denied", b_reader_id)}
        for foreign in (tenant + '"', reader_id, writer_id, scope_rid):
            assert foreign not in b_answer.text


def test_wrong_secrets_and_disabled_clients_reach_the_tenants_admins_and_unattributed_the_operators(
    start_server: Callable[..., Server], tenant: str
) -> None:
    operators = f"{tenant}-ops"
    server = start_server(OPERATOR_TENANT=operators)
    victim, victim_secret = server.client(tenant, READ)
    _, _, admin = login(server, tenant, ("admin",))
    _, _, ops_admin = login(server, operators, ("admin",))
    stranger = "c_" + "0" * 24
    assert request_token(server, victim, "not-its-secret").status_code == 401
    assert request_token(server, stranger, "guess").status_code == 401
    assert request_token(server, victim_secret, victim).status_code == 401  # id and secret swapped
    with http(server, {}) as api:
        ok(api.post(f"{ADMIN}/clients/{victim}/disable", json={"reason": "leaked"}, headers=admin))
        assert request_token(server, victim, victim_secret).status_code == 401
        assert problem(api.get(f"{API}/agents/a1", headers=bearer("not.a.token")), 401)

        mine = ok(api.get(f"{ADMIN}/security/denials", headers=admin))["items"]
        assert {(d["kind"], d["client_id"], d["tenant"]) for d in mine} == {
            ("token_denied", victim, tenant),
            ("client_disabled", victim, tenant),
        }
        assert [d["detail"] for d in mine if d["kind"] == "token_denied"] == [{"reason": "bad_credentials"}]
        # what names no tenant goes to the operator tenant's admins, and nothing of the tenant's
        theirs = ok(api.get(f"{ADMIN}/security/denials", headers=ops_admin))["items"]
        assert {(d["kind"], d["client_id"], d["tenant"]) for d in theirs} == {
            ("token_denied", stranger, None),
            ("token_denied", "-", None),  # what was sent as the id was not one: not kept
            ("auth_denied", None, None),
        }
        unattributed = api.get(f"{ADMIN}/security/denials", headers=ops_admin).text
        assert victim_secret not in unattributed
        assert "/agents/a1" not in unattributed  # the path of a failed request is logged, not listed


# -- disabled clients --------------------------------------------------------------------------


def test_a_disabled_clients_live_token_and_credentials_stop_working(
    store_kind: str, start_server: Callable[..., Server], tenant: str, request: pytest.FixtureRequest
) -> None:
    server = start_server(**store_env(store_kind, request))
    victim, victim_secret, victim_headers = login(server, tenant, READ_WRITE)
    _, _, admin = login(server, tenant, ("admin",))
    _, _, foreign_admin = login(server, f"{tenant}-b", ("admin",))
    with http(server, victim_headers) as api, http(server, {}) as anon:
        ok(api.post(f"{API}/agents/a1", json=GOALS), 201)

        with nothing_written(server):
            refused = anon.post(
                f"{ADMIN}/clients/{victim}/disable", json={"reason": "x"}, headers=foreign_admin
            )
            assert problem(refused, 404)["type"] == "/problems/not-found"
        ok(api.put(f"{API}/agents/a1/progress", json=PROGRESS))

        disabled = ok(
            anon.post(f"{ADMIN}/clients/{victim}/disable", json={"reason": "leaked"}, headers=admin)
        )
        assert disabled["disabled"] is True

        def refused_now() -> bool:
            return api.get(f"{API}/agents/a1").status_code == 401

        assert eventually(refused_now), "the disabled client's token was still accepted after 5 s"
        with nothing_written(server):
            for method, path, body in (
                ("GET", f"{API}/agents/a1", None),
                ("PUT", f"{API}/agents/a1/progress", PROGRESS),
                ("POST", f"{API}/agents/a2", GOALS),
            ):
                refused = api.request(method, path, json=body)
                assert problem(refused, 401)["type"] == "/problems/unauthorized"
                assert 'error="invalid_token"' in challenge(refused)
            for scope in (None, "goals:read"):
                denied = request_token(server, victim, victim_secret, scope)
                assert denied.status_code == 401, denied.text
                assert denied.json()["error"] == "invalid_client"
                assert "access_token" not in denied.json()
        listed = ok(anon.get(f"{ADMIN}/clients", headers=admin))["items"]
        assert [c["disabled"] for c in listed if c["client_id"] == victim] == [True]
        assert ok(anon.get(f"{ADMIN}/clients", headers=admin))  # the admin itself still works


# -- secrets in the log ------------------------------------------------------------------------


@pytest.mark.parametrize(("debug", "workers"), [("false", "1"), ("true", "1"), ("false", "2")])
def test_the_server_log_never_contains_a_secret_or_a_token(
    start_server: Callable[..., Server], tenant: str, tmp_path: Path, debug: str, workers: str
) -> None:
    # with several workers, each configures its own logging (the security events are log lines)
    server = start_server("--workers", workers, DEBUG=debug)
    _, admin_secret, admin = login(server, tenant, ALL_SCOPES)
    admin_token = admin["Authorization"].removeprefix("Bearer ")
    sensitive = [admin_secret, admin_token]
    with http(server, admin) as api:
        made = ok(api.post(f"{ADMIN}/clients", json={"name": "bot", "scopes": list(READ_WRITE)}), 201)
        bot, bot_secret = made["client_id"], made["client_secret"]
        assert eventually(lambda: bot in {c["client_id"] for c in ok(api.get(f"{ADMIN}/clients"))["items"]})
        by_post = httpx.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": bot, "client_secret": bot_secret},
            timeout=30,
        )
        bot_token = ok(by_post)["access_token"]
        rotated = ok(api.post(f"{ADMIN}/clients/{bot}/rotate-secret"))["client_secret"]
        new_token = fetch_token(server, bot, rotated)
        sensitive += [bot_secret, bot_token, rotated, new_token]

        # failures that carry secrets or tokens: wrong secrets (containing the right one),
        # a secret sent as a bearer token, a tampered token, a bad grant, a disabled client
        wrong = rotated + "x"
        sensitive.append(wrong)
        assert request_token(server, bot, wrong).status_code == 401
        assert request_token(server, bot, bot_secret).status_code == 401
        assert (
            httpx.post(
                f"{server.url}/oauth/token",
                data={"grant_type": "password", "client_id": bot, "client_secret": rotated},
                timeout=30,
            ).status_code
            == 400
        )
        assert httpx.get(f"{server.url}{API}/", headers=bearer(rotated), timeout=30).status_code == 401
        # the bot's signature under the admin's claims
        tampered = ".".join((*admin_token.split(".")[:2], new_token.split(".")[2]))
        sensitive.append(tampered)
        assert httpx.get(f"{server.url}{API}/", headers=bearer(tampered), timeout=30).status_code == 401
        ok(api.post(f"{ADMIN}/clients/{bot}/disable", json={"reason": "rotated away"}))
        assert eventually(
            lambda: httpx.get(f"{server.url}{API}/", headers=bearer(new_token), timeout=30).status_code == 401
        )
        assert request_token(server, bot, rotated).status_code == 401
        assert request_token(server, rotated, bot).status_code == 401  # the secret sent as the id
        in_query = httpx.post(
            f"{server.url}/oauth/token",
            params={"client_secret": rotated},
            data={"grant_type": "client_credentials", "client_id": bot},
            timeout=30,
        )
        assert in_query.status_code == 401  # and the access line names the path only

    server.stop()
    log = "\n".join(p.read_text() for p in sorted(tmp_path.glob("server-*.log")))
    assert '"event": "token_issued"' in log and '"event": "auth_denied"' in log  # the log is on
    # DEBUG logs every request (and libraries' debug lines), still without a secret
    assert (f'"POST /api/v1/admin/clients/{bot}/disable HTTP/1.1" 200' in log) == (debug == "true")
    leaked = [s[:12] + "..." for s in sensitive if s in log]
    assert not leaked, f"secrets or tokens in the server log: {leaked}"
