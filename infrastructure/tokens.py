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
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infrastructure.jose import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidTokenError,
    JoseError,
    JsonWebToken,
    JWTClaims,
    MissingAlgorithmError,
    UnsupportedAlgorithmError,
)
from infrastructure.remote_jwks import RemoteJWKS
from infrastructure.signing_keys import SIGNING_ALGORITHM, KeyRing

__all__ = ["Claims", "InvalidToken", "TokenIssuer", "TokenVerifier"]

_AT_JWT_TYP = "at+jwt"
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
# ECDSA signatures in a JWS are r || s, each the curve's size (RFC 7518 section 3.4).
_EC_SIGNATURE_BYTES = {"ES256": 64, "ES384": 96, "ES512": 132}
_REQUIRED_CLAIMS = ("iss", "aud", "sub", "tenant", "jti", "exp", "nbf", "iat")
_STRING_CLAIMS = ("iss", "sub", "tenant", "jti")
_TIME_CLAIMS = ("exp", "nbf", "iat")


class InvalidToken(Exception):
    """A token was refused; ``reason`` is short machine-friendly text (see the module docstring).
    ``checked`` is False when the token was refused before any signature check (by
    :meth:`TokenVerifier.screen`): what cost nothing to refuse."""

    def __init__(self, reason: str, *, checked: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.checked = checked


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


def _b64url_chars(size: int) -> int:
    """Characters of `size` bytes in unpadded base64url."""
    return -(-size * 4 // 3)


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

    def screen(self, token: str) -> None:
        """Raise :class:`InvalidToken` (``checked=False``) for what cannot be a token of this
        verifier, without checking a signature: not a compact JWS, an algorithm not allowed, a
        kid with no key (a remote JWKS is asked as `verify` would ask it), a key that does not
        fit the algorithm, a signature of a length the algorithm never makes. Costs
        microseconds; `verify` starts with it."""
        try:
            if (
                not isinstance(token, str)
                or len(token) > _MAX_TOKEN_CHARS
                or not _COMPACT_JWS.fullmatch(token)
            ):
                raise InvalidToken("malformed")
            header = _peek_header(token)
            alg = self._allowed_algorithm(header)
            self._key_for(header, alg)
            size = _EC_SIGNATURE_BYTES.get(alg)
            if size is not None and len(token) - token.rindex(".") - 1 != _b64url_chars(size):
                raise InvalidToken("bad_signature")
        except InvalidToken as refused:
            refused.checked = False
            raise

    def verify(self, token: str) -> Claims:
        """Return the token's claims, or raise :class:`InvalidToken`."""
        self.screen(token)
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
        return self._key_for(header, self._allowed_algorithm(header))

    def _allowed_algorithm(self, header: Mapping[str, Any]) -> str:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("algorithm_not_allowed")
        return alg

    def _key_for(self, header: Mapping[str, Any], alg: str) -> Any:
        """The key the header's kid names, fit for `alg`."""
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
