"""Our token signing keys: an ES256 key ring, generated into a file (dev and test) or given
by configuration as PEM (production), published as a JWKS.

Each key's kid is its RFC 7638 thumbprint. The newest key signs; older keys verify until they
retire, so a rotation never breaks the tokens in flight.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infrastructure.jose import ECKey, JsonWebKey

__all__ = ["SIGNING_ALGORITHM", "KeyRing"]

log = logging.getLogger(__name__)

SIGNING_ALGORITHM = "ES256"
_CURVE = "P-256"
_FILE_VERSION = 1


@dataclass(frozen=True)
class _RingKey:
    kid: str
    key: ECKey  # private EC P-256 key, with kid/use/alg set as JWK parameters
    created_at: float | None  # None: a configured key, which never retires by age


def _public_members(key: ECKey) -> dict[str, str]:
    """The required public members of a P-256 JWK, each coordinate as its full 32 octets
    (RFC 7518 section 6.2.1.2). authlib drops a coordinate's leading zero octets, which about
    one key in 64 has; strict verifiers refuse such a JWK, and its thumbprint is not RFC 7638's."""
    numbers = key.get_private_key().public_key().public_numbers()

    def octets(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

    return {"crv": _CURVE, "kty": "EC", "x": octets(numbers.x), "y": octets(numbers.y)}


def _thumbprint(key: ECKey) -> str:
    """RFC 7638: SHA-256 of the required members, in lexical order and without whitespace."""
    members = json.dumps(_public_members(key), sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


def _with_params(raw_private_key: Any, kid: str) -> ECKey:
    return ECKey.import_key(raw_private_key, {"kid": kid, "use": "sig", "alg": SIGNING_ALGORITHM})


def _new_key(created_at: float) -> _RingKey:
    generated = JsonWebKey.generate_key("EC", _CURVE, is_private=True)
    kid = _thumbprint(generated)
    return _RingKey(kid, _with_params(generated.get_private_key(), kid), created_at)


def _public_jwk(entry: _RingKey) -> dict[str, Any]:
    # Built from the public numbers only, so that no private part can ever leak.
    return {**_public_members(entry.key), "kid": entry.kid, "use": "sig", "alg": SIGNING_ALGORITHM}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``<path>.lock`` (so that several workers starting together
    agree on one key file instead of each writing its own)."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class KeyRing:
    """ES256 signing keys, each with a kid and a creation time. The newest key signs; every key
    younger than ``retire_after_s`` still verifies (rotation without breaking tokens in flight).

    The newest key always verifies (it is the one signing), whatever its age. Keys given by
    configuration (:meth:`from_pem`) have no creation time and never retire by age. Build a ring
    with :meth:`load_or_create` or :meth:`from_pem`.
    """

    def __init__(
        self,
        keys: Sequence[_RingKey],
        *,
        path: Path | None,
        rotate_after_s: float,
        retire_after_s: float,
        clock: Callable[[], float],
    ) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        if rotate_after_s <= 0 or retire_after_s <= rotate_after_s:
            raise ValueError("need 0 < rotate_after_s < retire_after_s")
        kids = [k.kid for k in keys]
        if len(set(kids)) != len(kids):
            raise ValueError("duplicate kid in key ring")
        self._keys = list(keys)
        self._path = path
        self._rotate_after_s = rotate_after_s
        self._retire_after_s = retire_after_s
        self._clock = clock
        self._lock = threading.Lock()

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def load_or_create(
        cls,
        path: Path,
        *,
        rotate_after_s: float = 30 * 86400,
        retire_after_s: float = 31 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> KeyRing:
        """Load the ring from ``path`` (a JSON file of private JWKs with their creation times), or
        create it with one new key. The file is written with mode 0600, atomically, and parent
        directories are made. If the newest key is older than ``rotate_after_s`` a new key is
        added (and retired keys dropped) and the file saved."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if path.exists():
                ring = cls(
                    cls._read(path),
                    path=path,
                    rotate_after_s=rotate_after_s,
                    retire_after_s=retire_after_s,
                    clock=clock,
                )
                now = clock()
                newest = ring._keys[-1]
                assert newest.created_at is not None
                if now - newest.created_at > rotate_after_s:
                    ring._keys.append(_new_key(now))
                    log.info("token signing key rotated on load: new kid %s", ring._keys[-1].kid)
                if ring._prune(now) or ring._keys[-1] is not newest:
                    ring._save()
            else:
                ring = cls(
                    [_new_key(clock())],
                    path=path,
                    rotate_after_s=rotate_after_s,
                    retire_after_s=retire_after_s,
                    clock=clock,
                )
                ring._save()
                log.info("token signing key created: kid %s", ring._keys[-1].kid)
        return ring

    @classmethod
    def from_pem(
        cls,
        pems: Sequence[str],
        *,
        rotate_after_s: float = 30 * 86400,
        retire_after_s: float = 31 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> KeyRing:
        """A ring of keys given by configuration: PEM EC P-256 private keys (unencrypted),
        newest last. Each kid is the key's RFC 7638 thumbprint. These keys never retire by age;
        rotation is done by changing the configuration."""
        if isinstance(pems, str):
            raise TypeError("from_pem takes a sequence of PEM strings, not one string")
        if not pems:
            raise ValueError("from_pem needs at least one PEM key")
        entries = []
        for index, pem in enumerate(pems):
            try:
                imported = ECKey.import_key(pem)
                private = imported.get_private_key()
                if imported.public_only or private is None:
                    raise ValueError("not a private key")
                if ECKey.CURVES_DSS.get(private.curve.name) != _CURVE:
                    raise ValueError("not a P-256 key")
            except (ValueError, TypeError) as exc:  # never echo the key material itself
                raise ValueError(f"PEM key #{index} is not an unencrypted EC P-256 private key") from exc
            kid = _thumbprint(imported)
            entries.append(_RingKey(kid, _with_params(private, kid), None))
        return cls(
            entries, path=None, rotate_after_s=rotate_after_s, retire_after_s=retire_after_s, clock=clock
        )

    # -- use -----------------------------------------------------------------------------------

    def rotate(self) -> str:
        """Add a new signing key and return its kid; drops retired keys; persists when file-backed."""
        with self._lock:
            if self._path is None:
                return self._rotate_in_memory()
            with _locked(self._path):
                kid = self._rotate_in_memory()
                self._save()
                return kid

    def signing_key(self) -> ECKey:
        """The newest key (an authlib ``ECKey`` holding the private key; its ``kid`` is set)."""
        return self._keys[-1].key

    @property
    def signing_kid(self) -> str:
        """The kid of the signing key."""
        return self._keys[-1].kid

    @property
    def kids(self) -> tuple[str, ...]:
        """The kids of the keys that currently verify, oldest first (the last one signs)."""
        now = self._clock()
        return tuple(k.kid for k in self._keys if self._verifies(k, now))

    def verification_key(self, kid: str) -> ECKey | None:
        """The key with this kid if it still verifies (not retired), else None."""
        now = self._clock()
        for entry in self._keys:
            if entry.kid == kid:
                return entry.key if self._verifies(entry, now) else None
        return None

    def jwks(self) -> dict[str, Any]:
        """The public JWKS of the keys that still verify: ``{"keys": [...]}`` with kid, use "sig"
        and alg "ES256"; never any private part."""
        now = self._clock()
        return {"keys": [_public_jwk(k) for k in self._keys if self._verifies(k, now)]}

    # -- internals -----------------------------------------------------------------------------

    def _verifies(self, entry: _RingKey, now: float) -> bool:
        if entry is self._keys[-1] or entry.created_at is None:
            return True
        return now - entry.created_at <= self._retire_after_s

    def _prune(self, now: float) -> bool:
        kept = [k for k in self._keys if self._verifies(k, now)]
        pruned = len(kept) != len(self._keys)
        self._keys = kept
        return pruned

    def _rotate_in_memory(self) -> str:
        now = self._clock()
        entry = _new_key(now)
        self._keys.append(entry)
        self._prune(now)
        log.info("token signing key rotated: new kid %s", entry.kid)
        return entry.kid

    @staticmethod
    def _read(path: Path) -> list[_RingKey]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("key file %s is readable by others (mode %o); it should be 0600", path, mode)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("version") != _FILE_VERSION:
                raise ValueError(f"unsupported version {document.get('version')!r}")
            entries = []
            for item in document["keys"]:
                created_at = item["created_at"]
                if isinstance(created_at, bool) or not isinstance(created_at, int | float):
                    raise ValueError("created_at must be a number")
                key = ECKey.import_key(item["jwk"])
                private = key.get_private_key()
                if private is None or ECKey.CURVES_DSS.get(private.curve.name) != _CURVE:
                    raise ValueError("not an EC P-256 private key")
                kid = item["jwk"].get("kid")
                # Files written before kids were computed on full-length coordinates keep their
                # kid, which tokens already issued carry.
                if kid not in (_thumbprint(key), key.thumbprint()):
                    raise ValueError("kid does not match the key's thumbprint")
                entries.append(_RingKey(kid, _with_params(private, kid), float(created_at)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"invalid key file {path}: {exc}") from exc
        entries.sort(key=lambda e: e.created_at or 0.0)
        return entries

    def _save(self) -> None:
        assert self._path is not None
        document = {
            "version": _FILE_VERSION,
            "keys": [
                {"created_at": k.created_at, "jwk": k.key.as_dict(is_private=True)}
                for k in self._keys
                if k.created_at is not None
            ],
        }
        tmp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
