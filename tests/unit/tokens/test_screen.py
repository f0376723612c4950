"""The verifier's screen: what cannot be one of our tokens is refused before any signature
check, with the reason a full verification gives and marked as refused unchecked; what has
the shape of one passes it, and only its signature tells."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import InvalidToken, TokenIssuer, TokenVerifier
from tests.unit.tokens.forging import (
    AUD,
    ISS,
    FakeClock,
    ecdsa_signer,
    es256_header,
    forge,
    good_claims,
    hmac_signer,
    ring_signer,
)


class CountedVerifier(TokenVerifier):
    """The real verifier, counting the signatures it checks: authlib asks for a key for each."""

    checks = 0

    def _load_key(self, header: Mapping[str, Any], payload: Any) -> Any:
        self.checks += 1
        return super()._load_key(header, payload)


@pytest.fixture
def counted(ring: KeyRing, clock: FakeClock) -> CountedVerifier:
    return CountedVerifier(ring, issuer=ISS, audience=AUD, clock=clock)


def random_signature(size: int) -> Callable[[bytes], bytes]:
    return lambda _: secrets.token_bytes(size)


GARBAGE: dict[str, tuple[Callable[[KeyRing], str], str]] = {
    "not a JWS": (lambda ring: "garbage", "malformed"),
    "three parts of nothing": (lambda ring: "a.b.c", "malformed"),
    "alg none": (
        lambda ring: forge(es256_header(ring, alg="none"), good_claims(), None),
        "algorithm_not_allowed",
    ),
    "HMAC under our kid": (
        lambda ring: forge(es256_header(ring, alg="HS256"), good_claims(), hmac_signer(b"k")),
        "algorithm_not_allowed",
    ),
    "no kid": (
        lambda ring: forge(es256_header(ring, kid=None), good_claims(), ring_signer(ring)),
        "unknown_key",
    ),
    "unknown kid": (
        lambda ring: forge(es256_header(ring, kid="not-ours"), good_claims(), ring_signer(ring)),
        "unknown_key",
    ),
    "HMAC-sized signature under ES256": (
        lambda ring: forge(es256_header(ring), good_claims(), hmac_signer(b"k")),
        "bad_signature",
    ),
    "P-384-sized signature under ES256": (
        lambda ring: forge(
            es256_header(ring),
            good_claims(),
            ecdsa_signer(ec.generate_private_key(ec.SECP384R1()), hashes.SHA256()),
        ),
        "bad_signature",
    ),
    "no signature": (lambda ring: forge(es256_header(ring), good_claims(), None), "bad_signature"),
}


@pytest.mark.parametrize(("make", "reason"), GARBAGE.values(), ids=list(GARBAGE))
def test_garbage_is_refused_by_the_screen_with_the_reason_verify_gives_and_no_signature_check(
    ring: KeyRing, counted: CountedVerifier, make: Callable[[KeyRing], str], reason: str
) -> None:
    token = make(ring)
    with pytest.raises(InvalidToken) as screened:
        counted.screen(token)
    with pytest.raises(InvalidToken) as verified:
        counted.verify(token)
    assert screened.value.reason == verified.value.reason == reason
    assert not screened.value.checked and not verified.value.checked  # it cost nothing
    assert counted.checks == 0


def test_what_has_the_shape_of_our_token_passes_the_screen_and_only_its_signature_tells(
    ring: KeyRing, counted: CountedVerifier, issuer: TokenIssuer
) -> None:
    real, _ = issuer.issue("client-7", "acme", ["goals:read"])
    forged = forge(es256_header(ring), good_claims(), random_signature(64))
    counted.screen(real)
    counted.screen(forged)
    assert counted.checks == 0
    assert counted.verify(real).tenant == "acme"
    with pytest.raises(InvalidToken) as refused:
        counted.verify(forged)
    assert refused.value.reason == "bad_signature" and refused.value.checked
    assert counted.checks == 2
