"""Sealed secrets: they open only with their key and for their owner, and the key file of
dev and test is private to its user."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from infrastructure.secret_box import SecretBox, SecretUnreadable, new_key_text, parse_key
from infrastructure.webhook_signing import new_secret, secret_key

SECRET = b"whsec_c2VjcmV0IGJ5dGVzIG9mIGEgd2ViaG9vaw=="


def test_a_sealed_secret_opens_for_its_owner_only() -> None:
    box = SecretBox(parse_key(new_key_text()))
    sealed = box.seal(SECRET, "owner-1")
    assert SECRET.decode() not in sealed and box.open(sealed, "owner-1") == SECRET
    assert box.seal(SECRET, "owner-1") != sealed  # a fresh nonce each time
    with pytest.raises(SecretUnreadable):
        box.open(sealed, "owner-2")
    with pytest.raises(SecretUnreadable):
        SecretBox(parse_key(new_key_text())).open(sealed, "owner-1")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretUnreadable):
        box.open(tampered, "owner-1")


def test_keys_are_32_bytes_of_base64() -> None:
    assert len(parse_key(base64.urlsafe_b64encode(bytes(32)).decode())) == 32
    for bad in ("", "not base64!", base64.b64encode(bytes(16)).decode()):
        with pytest.raises(ValueError, match="SECRETS_KEY"):
            parse_key(bad)


def test_the_generated_key_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets-key"
    sealed = SecretBox.load_or_create(path).seal(SECRET, "o")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretBox.load_or_create(path).open(sealed, "o") == SECRET


def test_signing_secrets_carry_32_random_bytes() -> None:
    one, two = new_secret(), new_secret()
    assert one.startswith("whsec_") and one != two
    assert len(secret_key(one)) == 32
