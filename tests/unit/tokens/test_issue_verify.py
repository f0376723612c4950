"""Issuing and verifying access tokens (infrastructure/tokens.py), and real attacks on the
verifier: every malicious token is really built and really signed (see forging.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import Claims, TokenIssuer, TokenVerifier
from tests.unit.tokens.forging import (
    AUD,
    ISS,
    T0,
    FakeClock,
    b64,
    ecdsa_signer,
    es256_header,
    forge,
    good_claims,
    hmac_signer,
    parts,
    reason_of,
    ring_signer,
    rsa_signer,
    unb64,
)

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
