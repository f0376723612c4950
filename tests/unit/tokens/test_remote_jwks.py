"""An external issuer's keys (infrastructure/remote_jwks.py) against a real JWKS server on
127.0.0.1: caching, refetching at most once per interval, failures and unusable keys.

The keys are fetched through the outbound guard, which refuses loopback by default: these
tests allow 127.0.0.0/8 explicitly, as an operator would allow an IdP on a private network."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from infrastructure.outbound import OutboundClient, OutboundPolicy
from infrastructure.remote_jwks import RemoteJWKS
from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import InvalidToken, TokenIssuer, TokenVerifier
from tests.unit.tokens.forging import (
    AUD,
    FakeClock,
    b64,
    ecdsa_signer,
    forge,
    good_claims,
    hmac_signer,
    parts,
    reason_of,
    ring_signer,
    rsa_signer,
)

REMOTE_ISS = "https://idp.test"
LOOPBACK_ALLOWED = OutboundPolicy(allow_nets=(ip_network("127.0.0.0/8"),))


@dataclass
class JWKSServer:
    url: str = ""
    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    state = JWKSServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
            body = json.dumps(state.document).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Remote:
    server: JWKSServer
    idp_ring: KeyRing
    idp: TokenIssuer
    jwks: RemoteJWKS
    verifier: TokenVerifier
    mono: FakeClock

    def publish(self) -> None:
        self.server.document = self.idp_ring.jwks()


@pytest.fixture
def outbound() -> Iterator[OutboundClient]:
    with OutboundClient(LOOPBACK_ALLOWED) as client:
        yield client


@pytest.fixture
def remote(jwks_server: JWKSServer, outbound: OutboundClient, tmp_path: Path, clock: FakeClock) -> Remote:
    idp_ring = KeyRing.load_or_create(tmp_path / "idp.json", clock=clock)
    mono = FakeClock(1000.0)
    jwks = RemoteJWKS(jwks_server.url, outbound, cache_s=3600, min_refetch_s=60, clock=mono)
    remote = Remote(
        server=jwks_server,
        idp_ring=idp_ring,
        idp=TokenIssuer(idp_ring, issuer=REMOTE_ISS, audience=AUD, clock=clock),
        jwks=jwks,
        verifier=TokenVerifier(None, issuer=REMOTE_ISS, audience=AUD, remote=jwks, clock=clock),
        mono=mono,
    )
    remote.publish()
    return remote


def random_kid_token() -> str:
    """A well-formed ES256 token with a random kid and a real signature by a random key."""
    signer = ecdsa_signer(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    header = {"alg": "ES256", "kid": secrets.token_urlsafe(12), "typ": "at+jwt"}
    return forge(header, good_claims(iss=REMOTE_ISS), signer)


def test_remote_keys_are_fetched_once_and_cached(remote: Remote) -> None:
    assert remote.server.requests == 0  # lazy
    for _ in range(10):
        claims = remote.verifier.verify(remote.idp.issue("client-9", "acme", ["goals:read"])[0])
        assert (claims.subject, claims.issuer, claims.scopes) == (
            "client-9",
            REMOTE_ISS,
            frozenset({"goals:read"}),
        )
    assert remote.server.requests == 1
    remote.mono.advance(3599)
    remote.verifier.verify(remote.idp.issue("c", "t", [])[0])
    assert remote.server.requests == 1


def test_remote_keys_are_refetched_when_the_cache_expires(remote: Remote) -> None:
    remote.verifier.verify(remote.idp.issue("c", "t", [])[0])
    remote.mono.advance(3600)
    remote.verifier.verify(remote.idp.issue("c", "t", [])[0])
    assert remote.server.requests == 2


def test_remote_unknown_kid_triggers_a_refetch_at_most_once_per_interval(remote: Remote) -> None:
    old_token, _ = remote.idp.issue("c", "t", [])
    remote.verifier.verify(old_token)
    assert remote.server.requests == 1

    remote.mono.advance(60)
    new_kid = remote.idp_ring.rotate()
    remote.publish()
    new_token, _ = remote.idp.issue("c", "t", [])
    assert parts(new_token)[0]["kid"] == new_kid
    assert remote.verifier.verify(new_token).subject == "c"  # unknown kid: refetched at once
    assert remote.server.requests == 2
    assert remote.verifier.verify(old_token).subject == "c"  # both keys now cached
    assert remote.server.requests == 2

    newer_kid = remote.idp_ring.rotate()
    remote.publish()
    newer_token, _ = remote.idp.issue("c", "t", [])
    assert parts(newer_token)[0]["kid"] == newer_kid
    remote.mono.advance(59)  # within min_refetch_s of the last fetch: no refetch
    assert reason_of(remote.verifier, newer_token) == "unknown_key"
    assert remote.server.requests == 2
    remote.mono.advance(1)
    assert remote.verifier.verify(newer_token).subject == "c"
    assert remote.server.requests == 3


def test_random_kids_cannot_make_us_hammer_the_idp(remote: Remote) -> None:
    remote.verifier.verify(remote.idp.issue("c", "t", [])[0])
    assert remote.server.requests == 1
    remote.mono.advance(61)
    for _ in range(100):
        assert reason_of(remote.verifier, random_kid_token()) == "unknown_key"
        remote.mono.advance(0.5)  # all 100 within min_refetch_s (50 s)
    assert remote.server.requests == 2  # at most one extra fetch
    remote.verifier.verify(remote.idp.issue("c", "t", [])[0])  # real tokens still work, from cache
    assert remote.server.requests == 2


def test_random_kids_on_a_cold_cache_cost_one_fetch(remote: Remote) -> None:
    for _ in range(100):
        assert reason_of(remote.verifier, random_kid_token()) == "unknown_key"
    assert remote.server.requests == 1


def test_concurrent_unknown_kids_cost_one_fetch(remote: Remote) -> None:
    remote.verifier.verify(remote.idp.issue("c", "t", [])[0])
    remote.mono.advance(61)
    tokens = [random_kid_token() for _ in range(40)]
    reasons: list[str] = []

    def attack(token: str) -> None:
        try:
            remote.verifier.verify(token)
        except InvalidToken as exc:
            reasons.append(exc.reason)

    threads = [threading.Thread(target=attack, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reasons == ["unknown_key"] * 40
    assert remote.server.requests == 2


def test_a_failing_idp_leaves_the_cached_keys_in_use(remote: Remote) -> None:
    token, _ = remote.idp.issue("c", "t", [])
    remote.verifier.verify(token)
    remote.server.status = 500
    remote.mono.advance(3600)  # cache stale, refetch fails
    assert remote.verifier.verify(token).subject == "c"
    assert remote.server.requests == 2
    assert remote.verifier.verify(token).subject == "c"  # next try only after min_refetch_s
    assert remote.server.requests == 2
    remote.server.status = 200
    remote.mono.advance(60)
    assert remote.verifier.verify(token).subject == "c"
    assert remote.server.requests == 3


def test_an_unreachable_idp_refuses_tokens(
    outbound: OutboundClient, clock: FakeClock, tmp_path: Path
) -> None:
    idp_ring = KeyRing.load_or_create(tmp_path / "idp.json", clock=clock)
    token, _ = TokenIssuer(idp_ring, issuer=REMOTE_ISS, audience=AUD, clock=clock).issue("c", "t", [])
    jwks = RemoteJWKS("http://127.0.0.1:9/jwks.json", outbound, clock=FakeClock())
    verifier = TokenVerifier(None, issuer=REMOTE_ISS, audience=AUD, remote=jwks, clock=clock)
    assert reason_of(verifier, token) == "unknown_key"


def test_an_idp_on_loopback_is_not_asked_unless_allowed(
    jwks_server: JWKSServer, clock: FakeClock, tmp_path: Path
) -> None:
    idp_ring = KeyRing.load_or_create(tmp_path / "idp.json", clock=clock)
    jwks_server.document = idp_ring.jwks()
    token, _ = TokenIssuer(idp_ring, issuer=REMOTE_ISS, audience=AUD, clock=clock).issue("c", "t", [])
    with OutboundClient(OutboundPolicy()) as guarded:
        jwks = RemoteJWKS(jwks_server.url, guarded, clock=FakeClock())
        verifier = TokenVerifier(None, issuer=REMOTE_ISS, audience=AUD, remote=jwks, clock=clock)
        assert reason_of(verifier, token) == "unknown_key"
    assert jwks_server.requests == 0


def test_unusable_remote_keys_are_ignored(remote: Remote) -> None:
    real = remote.idp_ring.jwks()["keys"]
    remote.server.document = {
        "keys": [
            {"kty": "oct", "k": b64(b"shared-secret-shared-secret!!!!!"), "kid": "hmac"},
            {**real[0], "kid": "for-encryption", "use": "enc"},
            {"kty": "nope", "kid": "weird"},
            "not a key",
            {**real[0], "kid": None},
            *real,
        ]
    }
    assert remote.verifier.verify(remote.idp.issue("c", "t", [])[0]).subject == "c"
    for kid in ("hmac", "for-encryption", "weird"):
        token = forge({"alg": "ES256", "kid": kid}, good_claims(iss=REMOTE_ISS), ring_signer(remote.idp_ring))
        assert reason_of(remote.verifier, token) == "unknown_key"
    hs = forge(
        {"alg": "HS256", "kid": "hmac"},
        good_claims(iss=REMOTE_ISS),
        hmac_signer(b"shared-secret-shared-secret!!!!!"),
    )
    assert reason_of(remote.verifier, hs) == "algorithm_not_allowed"


def test_remote_rs256_issuer_when_configured(
    jwks_server: JWKSServer, outbound: OutboundClient, clock: FakeClock
) -> None:
    """Algorithms come from configuration: an RS256 IdP works when RS256 is configured, its key's
    declared alg is honoured, and ES256 tokens are then refused."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "kid": "rsa-1",
        "use": "sig",
        "alg": "RS256",
        "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
    }
    jwks_server.document = {"keys": [jwk, {**jwk, "kid": "rsa-ps", "alg": "PS256"}]}
    jwks = RemoteJWKS(jwks_server.url, outbound, clock=FakeClock())
    verifier = TokenVerifier(
        None, issuer=REMOTE_ISS, audience=AUD, algorithms=["RS256"], remote=jwks, clock=clock
    )
    payload = good_claims(iss=REMOTE_ISS)
    token = forge({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}, payload, rsa_signer(private))
    assert verifier.verify(token).subject == "client-7"
    # The key declares alg PS256: it may not verify RS256 signatures.
    wrong_alg = forge({"alg": "RS256", "kid": "rsa-ps"}, payload, rsa_signer(private))
    assert reason_of(verifier, wrong_alg) == "key_mismatch"
    es = forge(
        {"alg": "ES256", "kid": "rsa-1"},
        payload,
        ecdsa_signer(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()),
    )
    assert reason_of(verifier, es) == "algorithm_not_allowed"
    hs = forge({"alg": "HS256", "kid": "rsa-1"}, payload, hmac_signer(jwk["n"].encode()))
    assert reason_of(verifier, hs) == "algorithm_not_allowed"
    assert jwks_server.requests == 1


def test_local_ring_and_remote_together(remote: Remote, ring: KeyRing, clock: FakeClock) -> None:
    """Our own keys are looked up first; only unknown kids go to the remote JWKS."""
    verifier = TokenVerifier(ring, issuer=REMOTE_ISS, audience=AUD, remote=remote.jwks, clock=clock)
    own, _ = TokenIssuer(ring, issuer=REMOTE_ISS, audience=AUD, clock=clock).issue("own", "t", [])
    assert verifier.verify(own).subject == "own"
    assert remote.server.requests == 0
    assert verifier.verify(remote.idp.issue("idp", "t", [])[0]).subject == "idp"
    assert remote.server.requests == 1
