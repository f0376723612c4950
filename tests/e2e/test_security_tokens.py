"""Attacks on a running server: forged and tampered tokens, requests without a usable token,
the token endpoint, and the OAuth flow exactly as a customer's script runs it.

Forged tokens are really built: base64url JSON by hand and a real signature, made with the
server's own signing keys (read from its DATA_DIR) where a token must fail on its claims alone,
or with an attacker's key, the public key as an HMAC secret, or no signature at all."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from infrastructure.settings import Settings
from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import TokenIssuer
from tests.conftest import ALL_SCOPES, Server
from tests.e2e.test_security import (
    ADMIN,
    API,
    GOALS,
    PROGRESS,
    READ_WRITE,
    bearer,
    challenge,
    http,
    login,
    nothing_written,
    ok,
    problem,
)

Signer = Callable[[bytes], bytes]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def compact(header: dict[str, Any], claims: dict[str, Any], sign: Signer) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def es256(key: ec.EllipticCurvePrivateKey) -> Signer:
    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def private_key(ring: KeyRing) -> ec.EllipticCurvePrivateKey:
    key: ec.EllipticCurvePrivateKey = ring.signing_key().get_private_key()
    return key


@dataclass(frozen=True)
class Target:
    """A running server, a tenant with an agent "a1", and what a forger would need."""

    server: Server
    tenant: str
    client_id: str  # a real client of the tenant, every scope
    attacker_token: str  # a genuine token of another tenant's client
    ring: KeyRing  # the server's own signing keys
    issuer: str
    audience: str
    tmp_path: Path

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.client_id,
            "tenant": self.tenant,
            "scope": " ".join(ALL_SCOPES),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": "ES256", "kid": self.ring.signing_kid, "typ": "at+jwt", **changes}

    def issuer_with(self, **changes: Any) -> TokenIssuer:
        options: dict[str, Any] = {"issuer": self.issuer, "audience": self.audience, **changes}
        return TokenIssuer(self.ring, **options)

    def attacker_ring(self) -> KeyRing:
        return KeyRing.load_or_create(self.tmp_path / "attacker" / "signing-keys.json")


@pytest.fixture
def target(start_server: Callable[..., Server], tenant: str, tmp_path: Path) -> Target:
    server = start_server()
    client_id, _, headers = login(server, tenant, ALL_SCOPES)
    ok(httpx.post(f"{server.url}{API}/agents/a1", json=GOALS, headers=headers, timeout=30), 201)
    _, _, attacker = login(server, f"{tenant}-evil", ALL_SCOPES)
    settings = Settings(**server.env)  # type: ignore[arg-type]
    return Target(
        server=server,
        tenant=tenant,
        client_id=client_id,
        attacker_token=attacker["Authorization"].removeprefix("Bearer "),
        ring=KeyRing.load_or_create(settings.keys_path),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        tmp_path=tmp_path,
    )


def expired(t: Target) -> str:
    minted = t.issuer_with(ttl_s=60, clock=lambda: time.time() - 3600)
    return minted.issue(t.client_id, t.tenant, ALL_SCOPES)[0]


def wrong_audience(t: Target) -> str:
    return t.issuer_with(audience="some-other-api").issue(t.client_id, t.tenant, ALL_SCOPES)[0]


def wrong_issuer(t: Target) -> str:
    return t.issuer_with(issuer="https://evil.example").issue(t.client_id, t.tenant, ALL_SCOPES)[0]


def alg_none(t: Target) -> str:
    return f"{b64json(t.header(alg='none'))}.{b64json(t.claims())}."


def hs256_with_public_key(t: Target) -> str:
    jwk = ok(httpx.get(f"{t.server.url}/.well-known/jwks.json", timeout=30))["keys"][-1]
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="), "big"),
        int.from_bytes(base64.urlsafe_b64decode(jwk["y"] + "=="), "big"),
        ec.SECP256R1(),
    )
    pem = numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return compact(
        t.header(alg="HS256"), t.claims(), lambda data: hmac.new(pem, data, hashlib.sha256).digest()
    )


def foreign_key_same_kid(t: Target) -> str:
    return compact(t.header(), t.claims(), es256(private_key(t.attacker_ring())))


def embedded_jwk(t: Target) -> str:
    ring = t.attacker_ring()
    jwk = ring.jwks()["keys"][0]
    return compact(t.header(jwk=jwk), t.claims(), es256(private_key(ring)))


def unknown_kid(t: Target) -> str:
    ring = t.attacker_ring()
    return compact(t.header(kid=ring.signing_kid), t.claims(), es256(private_key(ring)))


def tampered_tenant(t: Target) -> str:
    header, payload, signature = t.attacker_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return f"{header}.{b64json({**claims, 'tenant': t.tenant})}.{signature}"


def without_expiry(t: Target) -> str:
    return compact(t.header(), t.claims(exp=None), es256(private_key(t.ring)))


def tenant_with_a_trailing_newline(t: Target) -> str:
    """A tenant one character longer than a real one: its own, empty, tenant if let in."""
    return compact(t.header(), t.claims(tenant=t.tenant + "\n"), es256(private_key(t.ring)))


def not_yet_valid(t: Target) -> str:
    later = int(time.time()) + 3600
    return compact(t.header(), t.claims(nbf=later, iat=later), es256(private_key(t.ring)))


# Each forgery and the reason the server gives for refusing it (error_description): the reason
# shows the token failed on the defect it was built with, not on a slip of the forger.
FORGERIES: dict[Callable[[Target], str], str] = {
    expired: "expired",
    wrong_audience: "wrong_audience",
    wrong_issuer: "wrong_issuer",
    alg_none: "algorithm_not_allowed",
    hs256_with_public_key: "algorithm_not_allowed",
    foreign_key_same_kid: "bad_signature",
    embedded_jwk: "bad_signature",
    unknown_kid: "unknown_key",
    tampered_tenant: "bad_signature",
    without_expiry: "missing_claim:exp",
    not_yet_valid: "not_yet_valid",
    tenant_with_a_trailing_newline: "invalid_claim:tenant",
}


def test_tokens_minted_with_the_servers_own_key_and_right_claims_are_accepted(target: Target) -> None:
    """The control for the forgeries below: the forging machinery itself is sound."""
    for token in (
        compact(target.header(), target.claims(), es256(private_key(target.ring))),
        target.issuer_with().issue(target.client_id, target.tenant, ALL_SCOPES)[0],
    ):
        got = ok(httpx.get(f"{target.server.url}{API}/agents/a1", headers=bearer(token), timeout=30))
        assert got["agent_id"] == "a1"


@pytest.mark.parametrize(("forge", "reason"), FORGERIES.items(), ids=[f.__name__ for f in FORGERIES])
def test_a_forged_or_tampered_token_is_refused_as_invalid_token(
    target: Target, forge: Callable[[Target], str], reason: str
) -> None:
    token = forge(target)
    with http(target.server, bearer(token)) as api, nothing_written(target.server):
        for method, path, body in (
            ("GET", f"{API}/agents/a1", None),
            ("GET", f"{API}/", None),
            ("PUT", f"{API}/agents/a1/progress", PROGRESS),
            ("POST", f"{API}/agents/forged", GOALS),
            ("GET", f"{ADMIN}/clients", None),
        ):
            refused = api.request(method, path, json=body)
            assert problem(refused, 401)["type"] == "/problems/unauthorized", path
            assert challenge(refused).startswith("Bearer ")
            assert 'error="invalid_token"' in challenge(refused)
            assert f'error_description="{reason}"' in challenge(refused)
            assert "Balance" not in refused.text


def test_a_request_without_a_usable_bearer_token_is_challenged(target: Target) -> None:
    url = f"{target.server.url}{API}/agents/a1"
    with nothing_written(target.server):
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Basic YTpi"},
            {"X-Tenant": target.tenant},
        ):
            refused = httpx.put(f"{url}/progress", json=PROGRESS, headers=headers, timeout=30)
            assert problem(refused, 401)["type"] == "/problems/unauthorized"
            assert challenge(refused).startswith("Bearer ")
            assert "error=" not in challenge(refused)
        token = target.issuer_with().issue(target.client_id, target.tenant, ALL_SCOPES)[0]
        refused = httpx.get(url, params={"access_token": token}, timeout=30)  # only the header counts
        assert problem(refused, 401) and "error=" not in challenge(refused)
        refused = httpx.get(url, headers={"Authorization": "Bearer not-a-jwt"}, timeout=30)
        assert problem(refused, 401) and 'error="invalid_token"' in challenge(refused)


# -- the token endpoint ------------------------------------------------------------------------


def test_the_token_endpoint_authenticates_clients_and_never_caches(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server()
    client_id, secret = server.client(tenant, READ_WRITE)
    url = f"{server.url}/oauth/token"
    grant = {"grant_type": "client_credentials"}

    def assert_no_store(response: httpx.Response) -> None:
        assert response.headers["cache-control"] == "no-store"

    refusals = [
        (httpx.post(url, data=grant, auth=(client_id, secret + "x"), timeout=30), 401, "invalid_client"),
        (
            httpx.post(url, data={**grant, "client_id": client_id, "client_secret": "guess"}, timeout=30),
            401,
            "invalid_client",
        ),
        (httpx.post(url, data=grant, auth=("c_" + "0" * 24, secret), timeout=30), 401, "invalid_client"),
        (httpx.post(url, data=grant, timeout=30), 401, "invalid_client"),
        (
            httpx.post(url, data={"grant_type": "password"}, auth=(client_id, secret), timeout=30),
            400,
            "unsupported_grant_type",
        ),
        (
            httpx.post(url, data={"grant_type": "authorization_code"}, auth=(client_id, secret), timeout=30),
            400,
            "unsupported_grant_type",
        ),
        (httpx.post(url, json=grant, auth=(client_id, secret), timeout=30), 400, "invalid_request"),
    ]
    with nothing_written(server):
        for response, status, error in refusals:
            assert response.status_code == status, response.text
            assert response.json()["error"] == error
            assert "access_token" not in response.json()
            assert_no_store(response)
        assert refusals[0][0].headers["www-authenticate"].startswith("Basic ")

    by_basic = httpx.post(url, data=grant, auth=(client_id, secret), timeout=30)
    by_post = httpx.post(url, data={**grant, "client_id": client_id, "client_secret": secret}, timeout=30)
    narrowed = httpx.post(url, data={**grant, "scope": "goals:read"}, auth=(client_id, secret), timeout=30)
    for response, scope in (
        (by_basic, "goals:read goals:write"),
        (by_post, "goals:read goals:write"),
        (narrowed, "goals:read"),
    ):
        body = ok(response)
        assert_no_store(response)
        assert response.headers["pragma"] == "no-cache"
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["scope"] == scope
        listed = httpx.get(f"{server.url}{API}/", headers=bearer(body["access_token"]), timeout=30)
        assert ok(listed)["total"] == 0

    metadata = ok(httpx.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=30))
    assert metadata["token_endpoint"] == url
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    keys = ok(httpx.get(metadata["jwks_uri"], timeout=30))["keys"]
    assert keys and all("d" not in k and k["alg"] == "ES256" for k in keys)


def test_a_customers_authlib_script_fetches_a_token_writes_and_reads(
    start_server: Callable[..., Server], tenant: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib announces its httpx module's move to httpx2
        from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

    server = start_server()
    client_id, secret = server.client(tenant, READ_WRITE)
    with OAuth2Client(
        client_id, secret, token_endpoint=f"{server.url}/oauth/token", grant_type="client_credentials"
    ) as client:
        token = client.fetch_token()
        assert token["token_type"] == "Bearer"
        created = client.post(f"{server.url}{API}/agents/scripted", json=GOALS)
        assert created.status_code == 201, created.text
        got = client.get(
            f"{server.url}{API}/agents/scripted", params={"min_position": created.json()["position"]}
        )
        assert got.status_code == 200, got.text
        assert got.json()["goals"]["purpose_statement"] == GOALS["goals"]["purpose_statement"]
        assert got.json()["created_by"] == client_id
