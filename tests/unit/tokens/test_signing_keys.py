"""The signing key ring (infrastructure/signing_keys.py): rotation, retirement, its file
(mode 0600, atomic, shared by workers starting together) and keys given as PEM."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import TokenIssuer, TokenVerifier
from tests.unit.tokens.forging import (
    AUD,
    DAY,
    ISS,
    T0,
    FakeClock,
    b64,
    parts,
    reason_of,
)


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


def test_key_file_is_not_world_readable_even_with_a_lax_umask(tmp_path: Path, clock: FakeClock) -> None:
    previous = os.umask(0)
    try:
        KeyRing.load_or_create(tmp_path / "lax" / "k.json", clock=clock)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "lax" / "k.json").stat().st_mode) == 0o600
