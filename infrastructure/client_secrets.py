"""Client secrets: generated with `secrets`, stored only as scrypt hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

# scrypt cost: ~15 ms a hash here, enough to make offline guessing of a leaked hash expensive
# while the token endpoint stays cheap; parameters travel with each hash so they can change.
N, R, P = 2**14, 8, 1


def new_secret() -> str:
    return secrets.token_urlsafe(32)


CLIENT_ID_PATTERN = r"^c_[0-9a-f]{24}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


def new_client_id() -> str:
    return "c_" + secrets.token_hex(12)


def looks_like_client_id(text: str) -> bool:
    """Whether `text` has the form of a client id: what a denial may record of what a caller
    sent as its id (a secret pasted in its place must not be kept)."""
    return _CLIENT_ID.fullmatch(text) is not None


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.urlsafe_b64decode(salt + "=="),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
