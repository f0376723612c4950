"""Secrets the system must use again in clear (webhook signing secrets), kept encrypted:
AES-256-GCM under SECRETS_KEY, bound to what they belong to (the associated data).

Sealed form: `aesgcm.v1.<key id>.<base64url(nonce || ciphertext || tag)>`. The key id (the
first 8 bytes of the key's SHA-256, hex) names the key a secret was sealed with, so that a
later change can hold several keys (rotation, one per tenant) and open what the older ones sealed.

SECRETS_KEY is required in production; in dev and test a key is generated on first use into
DATA_DIR (mode 0600), the way the token signing keys are.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.webhooks import SealedSecretUnreadable

KEY_BYTES = 32
NONCE_BYTES = 12
PREFIX = "aesgcm.v1"


class SecretUnreadable(SealedSecretUnreadable):
    """A sealed secret this box cannot open: another key, another owner, or altered."""


def parse_key(text: str, name: str = "SECRETS_KEY") -> bytes:
    """The 32 bytes of a key such as SECRETS_KEY (standard or URL-safe base64); ValueError
    otherwise, naming the setting but never showing the value."""
    cleaned = text.strip()
    try:
        key = base64.urlsafe_b64decode(cleaned.replace("+", "-").replace("/", "_") + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} must be base64 of 32 random bytes") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{name} must be base64 of {KEY_BYTES} bytes (it has {len(key)})")
    return key


def new_key_text() -> str:
    """A fresh SECRETS_KEY value."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a secret box needs a {KEY_BYTES}-byte key")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    def seal(self, secret: bytes, owner: str) -> str:
        """`secret` encrypted, bound to `owner` (it opens only for the same owner)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret, owner.encode())
        return f"{PREFIX}.{self.key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, owner: str) -> bytes:
        try:
            scheme, version, key_id, blob = sealed.split(".", 3)
            raw = base64.urlsafe_b64decode(blob)
        except (ValueError, binascii.Error):
            raise SecretUnreadable("not a sealed secret") from None
        if f"{scheme}.{version}" != PREFIX or key_id != self.key_id:
            raise SecretUnreadable(f"sealed with another key ({key_id})")
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode())
        except InvalidTag:
            raise SecretUnreadable("altered, or sealed for another owner") from None

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        """The key in `path`, generated there (mode 0600) on first use: dev and test only."""
        return cls(parse_key(load_or_create_key_text(path)))


def load_or_create_key_text(path: Path) -> str:
    """The base64 key kept in `path`, written there (mode 0600) with a fresh key on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(new_key_text() + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return path.read_text(encoding="utf-8").strip()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Processes starting together agree on one key file instead of each writing its own."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
