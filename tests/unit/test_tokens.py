"""Access tokens (infrastructure/tokens.py): issuing, verifying, key rotation, and real attacks.

Every malicious token below is really built: base64url JSON by hand plus a real signature (ECDSA
with a foreign or differently-curved key, RSA, or an HMAC keyed with our public key), so a
refusal can only come from the verifier's rules. Files live under tmp_path; the remote JWKS is a
real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from infrastructure.tokens import (
    Claims,
    InvalidToken,
    KeyRing,
    RemoteJWKS,
    TokenIssuer,
    TokenVerifier,
)

ISS = "https://auth.a2a.test"
AUD = "a2a-goals"
T0 = 1_700_000_000.0
DAY = 86400.0

Signer = Callable[[bytes], bytes]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---------------------------------------------------------------------------------------------
# Hand-made tokens
# ---------------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def forge(header: dict[str, Any], payload: Any, sign: Signer | None) -> str:
    """A compact JWS from scratch: base64url(JSON header).base64url(JSON payload).signature."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode("ascii")) if sign is not None else b""
    return f"{signing_input}.{b64(signature)}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header_segment, payload_segment, _ = token.split(".")
    return json.loads(unb64(header_segment)), json.loads(unb64(payload_segment))


def ecdsa_signer(private_key: ec.EllipticCurvePrivateKey, hash_alg: hashes.HashAlgorithm) -> Signer:
    """JWS ECDSA signature (r || s, each padded to the curve size) with any curve and hash."""
    size = (private_key.curve.key_size + 7) // 8

    def sign(message: bytes) -> bytes:
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hash_alg)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    return sign


def ring_signer(ring: KeyRing) -> Signer:
    """A real ES256 signature by the ring's current signing key."""
    return ecdsa_signer(ring.signing_key().get_private_key(), hashes.SHA256())


def hmac_signer(secret: bytes) -> Signer:
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


def rsa_signer(private_key: rsa.RSAPrivateKey) -> Signer:
    return lambda message: private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def good_claims(**changes: Any) -> dict[str, Any]:
    """A valid payload at T0; a change to None removes that claim."""
    now = T0
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "client-7",
        "tenant": "acme",
        "scope": "goals:read goals:write",
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 900,
        "jti": secrets.token_urlsafe(16),
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def es256_header(ring: KeyRing, **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "ES256", "kid": ring.signing_kid, "typ": "at+jwt"}
    for name, value in changes.items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    return header


def reason_of(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    return caught.value.reason


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring(tmp_path: Path, clock: FakeClock) -> KeyRing:
    return KeyRing.load_or_create(tmp_path / "keys" / "signing.json", clock=clock)


@pytest.fixture
def issuer(ring: KeyRing, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock)


@pytest.fixture
def verifier(ring: KeyRing, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock)


# ---------------------------------------------------------------------------------------------
# Round trip and issued format
# ---------------------------------------------------------------------------------------------


def test_issue_then_verify_gives_the_claims(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, expires_in = issuer.issue("client-7", "acme", ["goals:write", "goals:read", "goals:read"])
    claims = verifier.verify(token)
    assert expires_in == 900
    assert claims == Claims(
        subject="client-7",
        tenant="acme",
        scopes=frozenset({"goals:read", "goals:write"}),
        token_id=claims.token_id,
        issued_at=int(T0),
        expires_at=int(T0) + 900,
        issuer=ISS,
    )
    assert len(claims.token_id) >= 16


def test_issued_token_header_and_claims(issuer: TokenIssuer, ring: KeyRing) -> None:
    token, _ = issuer.issue("client-7", "acme", {"b", "a", "c"})
    header, payload = parts(token)
    assert header == {"alg": "ES256", "kid": ring.signing_kid, "typ": "at+jwt"}
    assert set(payload) == {"iss", "aud", "sub", "tenant", "scope", "iat", "nbf", "exp", "jti"}
    assert payload["scope"] == "a b c"
    assert payload["iss"] == ISS and payload["aud"] == AUD
    assert payload["iat"] == payload["nbf"] == int(T0)
    assert payload["exp"] == int(T0) + 900


def test_jti_is_random_per_token(issuer: TokenIssuer) -> None:
    ids = {parts(issuer.issue("c", "t", [])[0])[1]["jti"] for _ in range(50)}
    assert len(ids) == 50


def test_empty_scopes_round_trip(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    assert verifier.verify(issuer.issue("c", "t", [])[0]).scopes == frozenset()


def test_custom_ttl(ring: KeyRing, clock: FakeClock, verifier: TokenVerifier) -> None:
    token, expires_in = TokenIssuer(ring, issuer=ISS, audience=AUD, ttl_s=60, clock=clock).issue("c", "t", [])
    assert expires_in == 60
    assert verifier.verify(token).expires_at == int(T0) + 60


@pytest.mark.parametrize("scopes", [["has space"], [""], ['quote"'], ["back\\slash"], ["tab\t"]])
def test_issue_refuses_invalid_scopes(issuer: TokenIssuer, scopes: list[str]) -> None:
    with pytest.raises(ValueError):
        issuer.issue("c", "t", scopes)


def test_issue_refuses_a_plain_string_of_scopes(issuer: TokenIssuer) -> None:
    with pytest.raises(TypeError):
        issuer.issue("c", "t", "goals:read")


@pytest.mark.parametrize(("subject", "tenant"), [("", "t"), ("c", "")])
def test_issue_refuses_empty_subject_or_tenant(issuer: TokenIssuer, subject: str, tenant: str) -> None:
    with pytest.raises(ValueError):
        issuer.issue(subject, tenant, [])


def test_forge_helper_makes_acceptable_tokens(ring: KeyRing, verifier: TokenVerifier) -> None:
    """Sanity check of the helpers: a hand-made token with a real signature by our key passes,
    so every refusal below is caused by the one thing each attack changes."""
    claims = verifier.verify(forge(es256_header(ring), good_claims(), ring_signer(ring)))
    assert claims.subject == "client-7"


# ---------------------------------------------------------------------------------------------
# Algorithm attacks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_is_refused(ring: KeyRing, verifier: TokenVerifier, alg: str) -> None:
    token = forge(es256_header(ring, alg=alg), good_claims(), None)
    assert token.endswith(".")
    assert reason_of(verifier, token) == "algorithm_not_allowed"


def test_alg_none_with_a_signature_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = forge(es256_header(ring, alg="none"), good_claims(), ring_signer(ring))
    assert reason_of(verifier, token) == "algorithm_not_allowed"


def test_missing_alg_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = forge(es256_header(ring, alg=None), good_claims(), ring_signer(ring))
    assert reason_of(verifier, token) == "algorithm_not_allowed"


@pytest.mark.parametrize("alg", [["ES256"], {"ES256": 1}, 256, None])
def test_non_string_alg_is_refused(ring: KeyRing, verifier: TokenVerifier, alg: Any) -> None:
    header = es256_header(ring)
    header["alg"] = alg
    assert reason_of(verifier, forge(header, good_claims(), ring_signer(ring))) == "algorithm_not_allowed"


@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_our_public_key_is_refused(ring: KeyRing, verifier: TokenVerifier, hs: str) -> None:
    """The classic key-confusion attack: the public key (which anyone can fetch from our JWKS)
    used as an HMAC secret, hoping the verifier feeds 'its key' to whatever alg the header names."""
    public_pem = ring.signing_key().as_pem()
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hs]
    for secret in (public_pem, public_pem.strip(), json.dumps(ring.jwks()["keys"][0]).encode()):
        token = forge(
            es256_header(ring, alg=hs),
            good_claims(),
            lambda m, s=secret: hmac.new(s, m, digest).digest(),  # type: ignore[misc]
        )
        assert reason_of(verifier, token) == "algorithm_not_allowed"


def test_hmac_signature_under_an_es256_header_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = forge(es256_header(ring), good_claims(), hmac_signer(ring.signing_key().as_pem()))
    assert reason_of(verifier, token) == "bad_signature"


def test_rs256_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = forge(es256_header(ring, alg="RS256"), good_claims(), rsa_signer(attacker))
    assert reason_of(verifier, token) == "algorithm_not_allowed"


def test_rs256_with_our_kid_is_refused_even_when_rs256_is_configured(ring: KeyRing, clock: FakeClock) -> None:
    """RS256 allowed (say, for a remote IdP), kid names our EC key: the key does not fit."""
    verifier = TokenVerifier(ring, issuer=ISS, audience=AUD, algorithms=("ES256", "RS256"), clock=clock)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = forge(es256_header(ring, alg="RS256"), good_claims(), rsa_signer(attacker))
    assert reason_of(verifier, token) == "key_mismatch"


@pytest.mark.parametrize(
    ("alg", "curve", "hash_alg"),
    [
        ("ES384", ec.SECP384R1(), hashes.SHA384()),
        ("ES512", ec.SECP521R1(), hashes.SHA512()),
        ("ES256K", ec.SECP256K1(), hashes.SHA256()),
    ],
)
def test_other_curves_are_refused(
    ring: KeyRing, verifier: TokenVerifier, alg: str, curve: ec.EllipticCurve, hash_alg: hashes.HashAlgorithm
) -> None:
    signer = ecdsa_signer(ec.generate_private_key(curve), hash_alg)
    assert (
        reason_of(verifier, forge(es256_header(ring, alg=alg), good_claims(), signer))
        == "algorithm_not_allowed"
    )


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP256K1()])
def test_other_curve_signature_under_es256_header_is_refused(
    ring: KeyRing, verifier: TokenVerifier, curve: ec.EllipticCurve
) -> None:
    signer = ecdsa_signer(ec.generate_private_key(curve), hashes.SHA256())
    assert reason_of(verifier, forge(es256_header(ring), good_claims(), signer)) == "bad_signature"


def test_es384_with_our_kid_is_refused_even_when_es384_is_configured(ring: KeyRing, clock: FakeClock) -> None:
    verifier = TokenVerifier(ring, issuer=ISS, audience=AUD, algorithms=("ES256", "ES384"), clock=clock)
    signer = ecdsa_signer(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
    assert (
        reason_of(verifier, forge(es256_header(ring, alg="ES384"), good_claims(), signer)) == "key_mismatch"
    )


@pytest.mark.parametrize("algorithms", [("none",), ("HS256",), ("ES256", "HS256"), ("es256",), (), "ES256"])
def test_verifier_refuses_unsafe_algorithm_configuration(ring: KeyRing, algorithms: Any) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(ring, issuer=ISS, audience=AUD, algorithms=algorithms)


def test_verifier_needs_keys(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(None, issuer=ISS, audience=AUD)


# ---------------------------------------------------------------------------------------------
# Keys and signatures
# ---------------------------------------------------------------------------------------------


def test_unknown_kid_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = forge(es256_header(ring, kid="no-such-key"), good_claims(), ring_signer(ring))
    assert reason_of(verifier, token) == "unknown_key"


@pytest.mark.parametrize("kid", [None, "", 7, ["x"]])
def test_missing_or_odd_kid_is_refused(ring: KeyRing, verifier: TokenVerifier, kid: Any) -> None:
    header = es256_header(ring, kid=None)
    if kid is not None:
        header["kid"] = kid
    assert reason_of(verifier, forge(header, good_claims(), ring_signer(ring))) == "unknown_key"


def test_token_from_another_key_ring_is_refused(
    tmp_path: Path, clock: FakeClock, verifier: TokenVerifier
) -> None:
    other = KeyRing.load_or_create(tmp_path / "other.json", clock=clock)
    token, _ = TokenIssuer(other, issuer=ISS, audience=AUD, clock=clock).issue("c", "t", [])
    assert reason_of(verifier, token) == "unknown_key"


def test_foreign_signature_under_our_kid_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    signer = ecdsa_signer(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    assert reason_of(verifier, forge(es256_header(ring), good_claims(), signer)) == "bad_signature"


def test_embedded_jwk_and_jku_are_not_trusted(ring: KeyRing, verifier: TokenVerifier) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    numbers = attacker.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
        "kid": "attacker",
    }
    signer = ecdsa_signer(attacker, hashes.SHA256())
    header = es256_header(ring, kid="attacker", jwk=jwk, jku="http://127.0.0.1:9/jwks.json")
    assert reason_of(verifier, forge(header, good_claims(), signer)) == "unknown_key"
    header = es256_header(ring, jwk=jwk, jku="http://127.0.0.1:9/jwks.json")
    assert reason_of(verifier, forge(header, good_claims(), signer)) == "bad_signature"


def test_tampered_payload_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue("client-7", "acme", ["goals:read"])
    header_segment, _, signature = token.split(".")
    _, payload = parts(token)
    for change in ({"tenant": "other"}, {"scope": "goals:read admin"}, {"exp": payload["exp"] + 3600}):
        tampered = f"{header_segment}.{b64(json.dumps(payload | change).encode())}.{signature}"
        assert reason_of(verifier, tampered) == "bad_signature"


def test_tampered_header_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue("client-7", "acme", [])
    _, payload_segment, signature = token.split(".")
    header, _ = parts(token)
    for change in ({"typ": "JWT"}, {"x": 1}, {"cty": "JWT"}):
        tampered = f"{b64(json.dumps(header | change).encode())}.{payload_segment}.{signature}"
        assert reason_of(verifier, tampered) == "bad_signature"
    swapped = f"{b64(json.dumps(header | {'alg': 'HS256'}).encode())}.{payload_segment}.{signature}"
    assert reason_of(verifier, swapped) == "algorithm_not_allowed"


def test_tampered_signature_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue("client-7", "acme", [])
    head, payload, signature = token.split(".")
    raw = bytearray(unb64(signature))
    raw[5] ^= 0x01
    assert reason_of(verifier, f"{head}.{payload}.{b64(bytes(raw))}") == "bad_signature"
    assert reason_of(verifier, f"{head}.{payload}.{b64(bytes(raw[:-1]))}") == "bad_signature"
    assert reason_of(verifier, f"{head}.{payload}.") == "bad_signature"


def test_unknown_critical_header_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    header = es256_header(ring, crit=["exp"], exp=0)
    assert reason_of(verifier, forge(header, good_claims(), ring_signer(ring))) == "malformed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "eyJhbGciOiJFUzI1NiJ9.e30.sig+/=",
        "eyJhbGciOiJFUzI1NiJ9..c2ln",
        f"{b64(b'not json')}.e30.c2ln",
        f"{b64(b'[1, 2]')}.e30.c2ln",
        "x" * 20_000 + ".e30.c2ln",
    ],
)
def test_malformed_tokens_are_refused(verifier: TokenVerifier, token: str) -> None:
    assert reason_of(verifier, token) == "malformed"


def test_non_object_payload_with_real_signature_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    assert (
        reason_of(verifier, forge(es256_header(ring), ["not", "an", "object"], ring_signer(ring)))
        == "malformed"
    )


def test_non_string_token_is_refused(verifier: TokenVerifier) -> None:
    assert reason_of(verifier, b"a.b.c") == "malformed"  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["exp", "nbf", "iat", "iss", "aud", "sub", "tenant", "jti"])
def test_required_claims(ring: KeyRing, verifier: TokenVerifier, name: str) -> None:
    token = forge(es256_header(ring), good_claims(**{name: None}), ring_signer(ring))
    assert reason_of(verifier, token) == f"missing_claim:{name}"


def test_scope_is_optional(ring: KeyRing, verifier: TokenVerifier) -> None:
    assert (
        verifier.verify(forge(es256_header(ring), good_claims(scope=None), ring_signer(ring))).scopes
        == frozenset()
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("exp", str(int(T0) + 900)),
        ("exp", True),
        ("nbf", [int(T0)]),
        ("iat", "now"),
        ("sub", ""),
        ("sub", 7),
        ("tenant", ""),
        ("tenant", {"id": "acme"}),
        ("jti", 123),
        ("iss", ["x"]),
        ("aud", ""),
        ("aud", []),
        ("aud", [AUD, 3]),
        ("scope", ["goals:read"]),
    ],
)
def test_claims_of_the_wrong_type_are_refused(
    ring: KeyRing, verifier: TokenVerifier, name: str, value: Any
) -> None:
    token = forge(es256_header(ring), good_claims(**{name: value}), ring_signer(ring))
    assert reason_of(verifier, token) == f"invalid_claim:{name}"


def test_wrong_audience_is_refused(ring: KeyRing, clock: FakeClock, verifier: TokenVerifier) -> None:
    token, _ = TokenIssuer(ring, issuer=ISS, audience="another-api", clock=clock).issue("c", "t", [])
    assert reason_of(verifier, token) == "wrong_audience"
    listed = forge(es256_header(ring), good_claims(aud=["another-api", "third"]), ring_signer(ring))
    assert reason_of(verifier, listed) == "wrong_audience"


def test_audience_list_containing_ours_is_accepted(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = forge(es256_header(ring), good_claims(aud=["other", AUD]), ring_signer(ring))
    assert verifier.verify(token).subject == "client-7"


def test_wrong_issuer_is_refused(ring: KeyRing, clock: FakeClock, verifier: TokenVerifier) -> None:
    token, _ = TokenIssuer(ring, issuer="https://evil.test", audience=AUD, clock=clock).issue("c", "t", [])
    assert reason_of(verifier, token) == "wrong_issuer"


def test_expiry_with_leeway(issuer: TokenIssuer, ring: KeyRing, clock: FakeClock) -> None:
    token, _ = issuer.issue("c", "t", [])
    later = FakeClock(T0 + 900 + 30)
    assert TokenVerifier(ring, issuer=ISS, audience=AUD, clock=later).verify(token).subject == "c"
    later.advance(1)
    assert reason_of(TokenVerifier(ring, issuer=ISS, audience=AUD, clock=later), token) == "expired"
    strict = TokenVerifier(ring, issuer=ISS, audience=AUD, leeway_s=0, clock=FakeClock(T0 + 901))
    assert reason_of(strict, token) == "expired"


def test_not_before_with_leeway(ring: KeyRing, verifier: TokenVerifier) -> None:
    inside = forge(es256_header(ring), good_claims(nbf=int(T0) + 30), ring_signer(ring))
    assert verifier.verify(inside).subject == "client-7"
    outside = forge(es256_header(ring), good_claims(nbf=int(T0) + 31), ring_signer(ring))
    assert reason_of(verifier, outside) == "not_yet_valid"


def test_issued_in_the_future_beyond_leeway(ring: KeyRing, verifier: TokenVerifier) -> None:
    inside = forge(es256_header(ring), good_claims(iat=int(T0) + 30), ring_signer(ring))
    assert verifier.verify(inside).issued_at == int(T0) + 30
    outside = forge(es256_header(ring), good_claims(iat=int(T0) + 31), ring_signer(ring))
    assert reason_of(verifier, outside) == "issued_in_future"


def test_issuer_clock_skew_within_leeway(ring: KeyRing, verifier: TokenVerifier) -> None:
    ahead = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=FakeClock(T0 + 20))
    assert verifier.verify(ahead.issue("c", "t", [])[0]).issued_at == int(T0) + 20
    far_ahead = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=FakeClock(T0 + 120))
    assert reason_of(verifier, far_ahead.issue("c", "t", [])[0]) == "not_yet_valid"


# ---------------------------------------------------------------------------------------------
# Key ring: rotation, retirement, files, PEM
# ---------------------------------------------------------------------------------------------


def test_rotation_keeps_old_tokens_valid_until_retirement(tmp_path: Path, clock: FakeClock) -> None:
    ring = KeyRing.load_or_create(
        tmp_path / "k.json", rotate_after_s=10 * DAY, retire_after_s=11 * DAY, clock=clock
    )
    # A long ttl so that expiry cannot be what refuses the old token at the end.
    issuer = TokenIssuer(ring, issuer=ISS, audience=AUD, ttl_s=int(30 * DAY), clock=clock)
    verifier = TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock)
    old_kid = ring.signing_kid
    old_token, _ = issuer.issue("c", "t", [])

    new_kid = ring.rotate()
    assert new_kid != old_kid and ring.signing_kid == new_kid
    assert ring.kids == (old_kid, new_kid)
    new_token, _ = issuer.issue("c", "t", [])
    assert parts(new_token)[0]["kid"] == new_kid
    assert verifier.verify(old_token).subject == "c"
    assert verifier.verify(new_token).subject == "c"

    clock.advance(11 * DAY)  # old key exactly retire_after_s old: still verifies
    assert verifier.verify(old_token).subject == "c"
    clock.advance(1)
    assert reason_of(verifier, old_token) == "unknown_key"
    assert verifier.verify(new_token).subject == "c"
    assert list(ring.kids) == [new_kid]
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new_kid]


def test_the_signing_key_never_retires(ring: KeyRing, clock: FakeClock) -> None:
    clock.advance(400 * DAY)
    token, _ = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock).issue("c", "t", [])
    assert TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock).verify(token).subject == "c"


def test_jwks_is_public_only(ring: KeyRing) -> None:
    ring.rotate()
    keys = ring.jwks()["keys"]
    assert len(keys) == 2
    for jwk in keys:
        assert "d" not in jwk
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
        assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert [k["kid"] for k in keys] == list(ring.kids)
    assert '"d"' not in json.dumps(ring.jwks())


def test_load_or_create_persists_with_0600_and_reloads(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "deep" / "er" / "signing.json"
    ring = KeyRing.load_or_create(path, clock=clock)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(ring.kids) == 1
    stored = json.loads(path.read_text())
    assert [k["jwk"]["kid"] for k in stored["keys"]] == list(ring.kids)
    assert all("d" in k["jwk"] for k in stored["keys"])  # the file holds the private keys

    token, _ = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock).issue("c", "t", [])
    again = KeyRing.load_or_create(path, clock=clock)
    assert again.kids == ring.kids
    assert TokenVerifier(again, issuer=ISS, audience=AUD, clock=clock).verify(token).subject == "c"

    ring.rotate()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.load_or_create(path, clock=clock).kids == ring.kids
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_load_rotates_a_stale_key_and_saves(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "k.json"
    first = KeyRing.load_or_create(path, rotate_after_s=10 * DAY, retire_after_s=11 * DAY, clock=clock)
    (old_kid,) = first.kids
    old_token, _ = TokenIssuer(first, issuer=ISS, audience=AUD, ttl_s=int(DAY), clock=clock).issue(
        "c", "t", []
    )

    clock.advance(10 * DAY - 1)
    assert KeyRing.load_or_create(
        path, rotate_after_s=10 * DAY, retire_after_s=11 * DAY, clock=clock
    ).kids == (old_kid,)
    clock.advance(2)
    rotated = KeyRing.load_or_create(path, rotate_after_s=10 * DAY, retire_after_s=11 * DAY, clock=clock)
    assert rotated.kids[0] == old_kid and len(rotated.kids) == 2
    assert rotated.signing_kid != old_kid
    assert KeyRing.load_or_create(
        path, rotate_after_s=10 * DAY, retire_after_s=11 * DAY, clock=clock
    ).kids == (rotated.kids)
    verifier = TokenVerifier(rotated, issuer=ISS, audience=AUD, clock=FakeClock(T0 + 60))
    assert verifier.verify(old_token).subject == "c"

    clock.advance(1 * DAY)  # the old key is now older than retire_after_s: dropped from the file
    pruned = KeyRing.load_or_create(path, rotate_after_s=10 * DAY, retire_after_s=11 * DAY, clock=clock)
    assert pruned.kids == (rotated.signing_kid,)
    assert len(json.loads(path.read_text())["keys"]) == 1


def test_load_refuses_a_corrupt_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "k.json"
    path.write_text("{not json")
    with pytest.raises(ValueError):
        KeyRing.load_or_create(path, clock=clock)
    KeyRing.load_or_create(path.with_name("ok.json"), clock=clock)
    document = json.loads(path.with_name("ok.json").read_text())
    document["keys"][0]["jwk"]["kid"] = "forged-kid"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError):
        KeyRing.load_or_create(path, clock=clock)


def test_ring_refuses_inverted_rotation_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        KeyRing.load_or_create(tmp_path / "k.json", rotate_after_s=10, retire_after_s=5)


def pem_key(curve: ec.EllipticCurve | None = None) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key


def rfc7638_thumbprint(key: ec.EllipticCurvePrivateKey) -> str:
    """Computed independently of authlib: SHA-256 over the required members in lexical order."""
    numbers = key.public_key().public_numbers()
    members = (
        '{"crv":"P-256","kty":"EC",'
        f'"x":"{b64(numbers.x.to_bytes(32, "big"))}","y":"{b64(numbers.y.to_bytes(32, "big"))}"}}'
    )
    return b64(hashlib.sha256(members.encode()).digest())


def key_with_a_short_coordinate() -> tuple[str, ec.EllipticCurvePrivateKey]:
    """A P-256 key whose x or y has a leading zero octet (about one key in 64)."""
    while True:
        pem, key = pem_key()
        numbers = key.public_key().public_numbers()
        if min(numbers.x, numbers.y) < 1 << 248:
            return pem, key


def test_coordinates_with_leading_zero_octets_keep_their_full_length(clock: FakeClock) -> None:
    pem, key = key_with_a_short_coordinate()
    ring = KeyRing.from_pem([pem], clock=clock)
    assert ring.kids == (rfc7638_thumbprint(key),)
    (jwk,) = ring.jwks()["keys"]
    numbers = key.public_key().public_numbers()
    assert (jwk["x"], jwk["y"]) == (b64(numbers.x.to_bytes(32, "big")), b64(numbers.y.to_bytes(32, "big")))
    token, _ = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock).issue("c", "t", [])
    assert TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock).verify(token).subject == "c"


def test_a_key_file_keeps_a_kid_computed_on_shortened_coordinates(tmp_path: Path, clock: FakeClock) -> None:
    """Key files written before coordinates were kept at full length hold such kids, and
    tokens that carry them must go on verifying."""
    path = tmp_path / "signing.json"
    KeyRing.load_or_create(path, clock=clock)
    version = json.loads(path.read_text())["version"]
    _, key = key_with_a_short_coordinate()
    numbers = key.private_numbers()
    public = numbers.public_numbers

    def short(value: int) -> str:
        return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    members = f'{{"crv":"P-256","kty":"EC","x":"{short(public.x)}","y":"{short(public.y)}"}}'
    earlier_kid = b64(hashlib.sha256(members.encode()).digest())
    assert earlier_kid != rfc7638_thumbprint(key)
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": short(public.x),
        "y": short(public.y),
        "d": b64(numbers.private_value.to_bytes(32, "big")),
        "kid": earlier_kid,
    }
    path.write_text(json.dumps({"version": version, "keys": [{"created_at": T0, "jwk": jwk}]}))
    ring = KeyRing.load_or_create(path, clock=clock)
    assert ring.kids == (earlier_kid,)
    token, _ = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock).issue("c", "t", [])
    assert TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock).verify(token).subject == "c"
    (published,) = ring.jwks()["keys"]
    assert published["kid"] == earlier_kid and len(base64.urlsafe_b64decode(published["y"] + "==")) == 32


def test_from_pem(clock: FakeClock) -> None:
    (old_pem, old_key), (new_pem, new_key) = pem_key(), pem_key()
    ring = KeyRing.from_pem([old_pem, new_pem], clock=clock)
    assert ring.kids == (rfc7638_thumbprint(old_key), rfc7638_thumbprint(new_key))
    assert ring.signing_kid == rfc7638_thumbprint(new_key)
    assert all("d" not in k for k in ring.jwks()["keys"])

    token_by_old, _ = TokenIssuer(KeyRing.from_pem([old_pem]), issuer=ISS, audience=AUD, clock=clock).issue(
        "c", "t", []
    )
    token_by_new, _ = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock).issue("c", "t", ["x"])
    assert parts(token_by_new)[0]["kid"] == rfc7638_thumbprint(new_key)
    verifier = TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock)
    assert verifier.verify(token_by_old).subject == "c"
    assert verifier.verify(token_by_new).scopes == frozenset({"x"})
    clock.advance(1000 * DAY)  # configured keys do not retire by age
    assert ring.kids == (rfc7638_thumbprint(old_key), rfc7638_thumbprint(new_key))


def test_from_pem_refuses_wrong_keys() -> None:
    pem, key = pem_key()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()
    for bad in (
        [],
        [public_pem],
        [rsa_pem],
        [pem_key(ec.SECP384R1())[0]],
        ["garbage"],
        [encrypted],
        [pem, pem],
    ):
        with pytest.raises(ValueError):
            KeyRing.from_pem(bad)
    with pytest.raises(TypeError):
        KeyRing.from_pem(pem)


# ---------------------------------------------------------------------------------------------
# Remote JWKS against a real local HTTP server
# ---------------------------------------------------------------------------------------------

REMOTE_ISS = "https://idp.test"


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
def remote(jwks_server: JWKSServer, tmp_path: Path, clock: FakeClock) -> Iterator[Remote]:
    idp_ring = KeyRing.load_or_create(tmp_path / "idp.json", clock=clock)
    mono = FakeClock(1000.0)
    client = httpx.Client(trust_env=False, timeout=5.0)  # no proxy for 127.0.0.1
    jwks = RemoteJWKS(jwks_server.url, client=client, cache_s=3600, min_refetch_s=60, clock=mono)
    remote = Remote(
        server=jwks_server,
        idp_ring=idp_ring,
        idp=TokenIssuer(idp_ring, issuer=REMOTE_ISS, audience=AUD, clock=clock),
        jwks=jwks,
        verifier=TokenVerifier(None, issuer=REMOTE_ISS, audience=AUD, remote=jwks, clock=clock),
        mono=mono,
    )
    remote.publish()
    try:
        yield remote
    finally:
        client.close()


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


def test_an_unreachable_idp_refuses_tokens(clock: FakeClock, tmp_path: Path) -> None:
    idp_ring = KeyRing.load_or_create(tmp_path / "idp.json", clock=clock)
    token, _ = TokenIssuer(idp_ring, issuer=REMOTE_ISS, audience=AUD, clock=clock).issue("c", "t", [])
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        jwks = RemoteJWKS("http://127.0.0.1:9/jwks.json", client=client, clock=FakeClock())
        verifier = TokenVerifier(None, issuer=REMOTE_ISS, audience=AUD, remote=jwks, clock=clock)
        assert reason_of(verifier, token) == "unknown_key"


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


def test_remote_rs256_issuer_when_configured(jwks_server: JWKSServer, clock: FakeClock) -> None:
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
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        jwks = RemoteJWKS(jwks_server.url, client=client, clock=FakeClock())
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


def test_key_file_is_not_world_readable_even_with_a_lax_umask(tmp_path: Path, clock: FakeClock) -> None:
    previous = os.umask(0)
    try:
        KeyRing.load_or_create(tmp_path / "lax" / "k.json", clock=clock)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "lax" / "k.json").stat().st_mode) == 0o600
