"""Hand-made tokens for the token tests: base64url JSON by hand plus a real signature (ECDSA
with any curve, RSA, or an HMAC keyed with whatever the test picks), so a refusal can only come
from the verifier's rules; and a clock the tests move by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import InvalidToken, TokenVerifier

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
