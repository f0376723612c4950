"""The keys of an external identity provider, fetched from its JWKS URL and cached."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from infrastructure.jose import JoseError, JsonWebKey
from infrastructure.outbound import OutboundClient, OutboundError, redacted

__all__ = ["RemoteJWKS"]

log = logging.getLogger(__name__)


class RemoteJWKS:
    """Keys of an external issuer by its JWKS URL, cached; an unknown kid triggers a
    refetch, but at most once per ``min_refetch_s`` (so forged tokens with random kids cannot make
    us hammer the IdP).

    The cache is refreshed when older than ``cache_s`` (again at most once per ``min_refetch_s``);
    if a fetch fails, the previous keys stay in use. Keys without a kid, with ``use`` other than
    "sig", symmetric ("oct") keys, and keys authlib cannot import are ignored. Fetching goes
    through the system's outbound guard (its addresses, timeout and size limit), and is
    synchronous and serialized by a lock.
    """

    def __init__(
        self,
        url: str,
        outbound: OutboundClient,
        *,
        cache_s: float = 3600,
        min_refetch_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_s <= 0 or min_refetch_s < 0:
            raise ValueError("need cache_s > 0 and min_refetch_s >= 0")
        self._url = url
        self._outbound = outbound
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

    def _fetch(self, now: float) -> None:
        self._attempted_at = now
        try:
            keys = self._parse(self._outbound.get_json(self._url))
        except OutboundError as exc:
            log.warning("could not fetch JWKS from %s: %s", exc.url, exc.reason)
            return
        except ValueError as exc:
            log.warning("could not use the JWKS of %s: %s", redacted(self._url), exc)
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
