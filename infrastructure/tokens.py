"""Access tokens: ES256 JWTs issued by us, verified against our key ring or an external JWKS.

Everything cryptographic is done by authlib's JOSE implementation (``authlib.jose``); this module
only decides *which* algorithms and keys are acceptable and which claims are required. The rules:

* the accepted algorithms come from configuration only (never from the token header); ``none``
  and symmetric (HMAC) algorithms cannot even be configured;
* the verification key is chosen by the header's ``kid`` and must fit the algorithm (key type,
  curve, and the key's own ``alg``/``use`` when it declares them); an unknown kid is rejected;
* ``iss``, ``aud``, ``sub``, ``tenant``, ``jti``, ``exp``, ``nbf`` and ``iat`` are required and
  type-checked; ``exp``/``nbf``/``iat`` are checked with a small leeway.

Every refusal raises :class:`InvalidToken` whose ``reason`` is one of: ``malformed``,
``algorithm_not_allowed``, ``unknown_key``, ``key_mismatch``, ``bad_signature``,
``missing_claim:<name>``, ``invalid_claim:<name>``, ``wrong_issuer``, ``wrong_audience``,
``expired``, ``not_yet_valid``, ``issued_in_future``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import authlib.deprecate  # type: ignore[import-untyped]
import httpx

# authlib warns (always) that authlib.jose will move to joserfc in 2.0; we pin 1.9.x, so silence
# only that warning and only for this import. authlib.deprecate is imported first so that its own
# global filter survives the catch_warnings() restore.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.jose import (  # type: ignore[import-untyped]
        ECKey,
        JoseError,
        JsonWebKey,
        JsonWebToken,
        JWTClaims,
    )
    from authlib.jose.errors import (  # type: ignore[import-untyped]
        BadSignatureError,
        ExpiredTokenError,
        InvalidClaimError,
        InvalidTokenError,
        MissingAlgorithmError,
        UnsupportedAlgorithmError,
    )

__all__ = ["Claims", "InvalidToken", "KeyRing", "RemoteJWKS", "TokenIssuer", "TokenVerifier"]

log = logging.getLogger(__name__)

SIGNING_ALGORITHM = "ES256"
_CURVE = "P-256"
_AT_JWT_TYP = "at+jwt"
_FILE_VERSION = 1
_MAX_TOKEN_CHARS = 16_384
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 section 3.3 scope-token

# Asymmetric JWS algorithms a verifier may be configured with: alg -> (kty, crv or None).
# "none" and HS* are deliberately absent: they can never be configured.
_VERIFIABLE_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
_REQUIRED_CLAIMS = ("iss", "aud", "sub", "tenant", "jti", "exp", "nbf", "iat")
_STRING_CLAIMS = ("iss", "sub", "tenant", "jti")
_TIME_CLAIMS = ("exp", "nbf", "iat")


class InvalidToken(Exception):
    """A token was refused; ``reason`` is short machine-friendly text (see the module docstring)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """The verified content of an access token."""

    subject: str  # client id
    tenant: str
    scopes: frozenset[str]
    token_id: str  # jti
    issued_at: int
    expires_at: int
    issuer: str


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Remote JWKS
# --------------------------------------------------------------------------------------------


class RemoteJWKS:
    """Keys of an external issuer by its JWKS URL (httpx), cached; an unknown kid triggers a
    refetch, but at most once per ``min_refetch_s`` (so forged tokens with random kids cannot make
    us hammer the IdP).

    The cache is refreshed when older than ``cache_s`` (again at most once per ``min_refetch_s``);
    if a fetch fails, the previous keys stay in use. Keys without a kid, with ``use`` other than
    "sig", symmetric ("oct") keys, and keys authlib cannot import are ignored. Fetching is synchronous and serialized
    by a lock; the own client (when none is given) has a 5 s timeout.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        cache_s: float = 3600,
        min_refetch_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_s <= 0 or min_refetch_s < 0:
            raise ValueError("need cache_s > 0 and min_refetch_s >= 0")
        self._url = url
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=5.0)
        self._cache_s = cache_s
        self._min_refetch_s = min_refetch_s
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._lock = threading.Lock()

    def get_key(self, kid: str) -> Any | None:
        """The issuer's key with this kid (an authlib key), or None. Fetches when the cache is
        empty or stale, or when the kid is unknown, but never twice within ``min_refetch_s``."""
        with self._lock:
            now = self._clock()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._cache_s
            if fresh and kid in self._keys:
                return self._keys[kid]
            if self._attempted_at is None or now - self._attempted_at >= self._min_refetch_s:
                self._fetch(now)
            return self._keys.get(kid)

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    def _fetch(self, now: float) -> None:
        self._attempted_at = now
        try:
            response = self._client.get(self._url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = self._parse(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not fetch JWKS from %s: %s", self._url, exc)
            return
        self._keys = keys
        self._fetched_at = now

    @staticmethod
    def _parse(document: Any) -> dict[str, Any]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWK set")
        keys: dict[str, Any] = {}
        for jwk in document["keys"]:
            if not isinstance(jwk, dict):
                continue
            kid = jwk.get("kid")
            if not isinstance(kid, str) or not kid or kid in keys:
                continue
            if jwk.get("use", "sig") != "sig" or jwk.get("kty") == "oct":  # only public signature keys
                continue
            try:
                keys[kid] = JsonWebKey.import_key(jwk)
            except (KeyError, TypeError, ValueError, JoseError):
                log.info("ignoring unusable JWK %s from JWKS", kid)
        return keys


# --------------------------------------------------------------------------------------------
# Issuing and verifying
# --------------------------------------------------------------------------------------------


class TokenIssuer:
    """Issues ES256 access tokens (``typ: at+jwt``) signed by the ring's newest key."""

    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl_s: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl_s = ttl_s
        self._clock = clock
        self._jwt = JsonWebToken([SIGNING_ALGORITHM])

    def issue(self, subject: str, tenant: str, scopes: Iterable[str]) -> tuple[str, int]:
        """Return ``(jwt, expires_in)``. Scopes are RFC 6749 scope-tokens (no spaces), sent sorted."""
        if not isinstance(subject, str) or not subject:
            raise ValueError("subject must be a non-empty string")
        if not isinstance(tenant, str) or not tenant:
            raise ValueError("tenant must be a non-empty string")
        if isinstance(scopes, str):
            raise TypeError("scopes must be an iterable of scope strings, not one string")
        scope_list = sorted(set(scopes))
        for scope in scope_list:
            if not isinstance(scope, str) or not _SCOPE_TOKEN.fullmatch(scope):
                raise ValueError(f"invalid scope {scope!r}")
        now = int(self._clock())
        key = self._keys.signing_key()
        header = {"alg": SIGNING_ALGORITHM, "kid": key.kid, "typ": _AT_JWT_TYP}
        payload = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "tenant": tenant,
            "scope": " ".join(scope_list),
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl_s,
            "jti": secrets.token_urlsafe(16),
        }
        token: bytes = self._jwt.encode(header, payload, key)
        return token.decode("ascii"), self._ttl_s


def _peek_header(token: str) -> dict[str, Any]:
    """Decode the (not yet trusted) JOSE header, only to pick an algorithm check and a key."""
    segment = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("malformed") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed")
    return header


def _key_fits(key: Any, alg: str) -> bool:
    """Whether this key may verify a signature made with ``alg``."""
    kty, crv = _VERIFIABLE_ALGORITHMS[alg]
    params = key.tokens
    if params.get("kty") != kty or (crv is not None and params.get("crv") != crv):
        return False
    if params.get("alg", alg) != alg or params.get("use", "sig") != "sig":
        return False
    key_ops = params.get("key_ops")
    return key_ops is None or "verify" in key_ops


class TokenVerifier:
    """Verifies access tokens: algorithm from configuration, key by kid (our ring first, then
    the remote JWKS), signature, then required claims (``iss``, ``aud``, ``sub``, ``tenant``,
    ``jti``, ``exp``, ``nbf``, ``iat``) with ``leeway_s`` of clock skew."""

    def __init__(
        self,
        keys: KeyRing | None,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = (SIGNING_ALGORITHM,),
        leeway_s: int = 30,
        remote: RemoteJWKS | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if keys is None and remote is None:
            raise ValueError("a verifier needs a key ring, a remote JWKS, or both")
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        if isinstance(algorithms, str) or not algorithms:
            raise ValueError("algorithms must be a non-empty sequence of algorithm names")
        refused = [a for a in algorithms if a not in _VERIFIABLE_ALGORITHMS]
        if refused:
            raise ValueError(f"algorithms not allowed for verification: {refused} (only asymmetric)")
        if leeway_s < 0:
            raise ValueError("leeway_s must not be negative")
        self._keys = keys
        self._remote = remote
        self._issuer = issuer
        self._audience = audience
        self._algorithms = frozenset(algorithms)
        self._leeway_s = leeway_s
        self._clock = clock
        self._jwt = JsonWebToken(sorted(self._algorithms))
        self._claims_options = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": audience},
        }

    def verify(self, token: str) -> Claims:
        """Return the token's claims, or raise :class:`InvalidToken`."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
            raise InvalidToken("malformed")
        header = _peek_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("algorithm_not_allowed")
        try:
            claims = self._jwt.decode(
                token, self._load_key, claims_cls=JWTClaims, claims_options=self._claims_options
            )
        except (UnsupportedAlgorithmError, MissingAlgorithmError) as exc:
            raise InvalidToken("algorithm_not_allowed") from exc
        except BadSignatureError as exc:
            raise InvalidToken("bad_signature") from exc
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken("malformed") from exc
        return self._validate(claims)

    def _load_key(self, header: Mapping[str, Any], payload: Any) -> Any:
        """authlib's key loader: called with the header it is about to verify against."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("algorithm_not_allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("unknown_key")
        key = self._keys.verification_key(kid) if self._keys is not None else None
        if key is None and self._remote is not None:
            key = self._remote.get_key(kid)
        if key is None:
            raise InvalidToken("unknown_key")
        if not _key_fits(key, alg):
            raise InvalidToken("key_mismatch")
        return key

    def _validate(self, claims: Any) -> Claims:
        for name in _REQUIRED_CLAIMS:
            if name not in claims:
                raise InvalidToken(f"missing_claim:{name}")
        for name in _STRING_CLAIMS:
            if not isinstance(claims[name], str) or not claims[name]:
                raise InvalidToken(f"invalid_claim:{name}")
        aud = claims["aud"]
        if not (isinstance(aud, str) and aud) and not (
            isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud)
        ):
            raise InvalidToken("invalid_claim:aud")
        for name in _TIME_CLAIMS:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken(f"invalid_claim:{name}")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("invalid_claim:scope")

        now = int(self._clock())
        leeway = self._leeway_s
        checks: list[tuple[Callable[[], None], str]] = [
            (claims.validate_iss, "wrong_issuer"),
            (claims.validate_aud, "wrong_audience"),
            (lambda: claims.validate_exp(now, leeway), "expired"),
            (lambda: claims.validate_nbf(now, leeway), "not_yet_valid"),
            (lambda: claims.validate_iat(now, leeway), "issued_in_future"),
        ]
        for check, reason in checks:
            try:
                check()
            except (InvalidClaimError, ExpiredTokenError, InvalidTokenError) as exc:
                raise InvalidToken(reason) from exc

        return Claims(
            subject=claims["sub"],
            tenant=claims["tenant"],
            scopes=frozenset(scope.split()),
            token_id=claims["jti"],
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            issuer=claims["iss"],
        )
