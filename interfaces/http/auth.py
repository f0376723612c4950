"""Bearer-token authentication, scopes and rate limits: the one place every route's caller
is decided. Routes declare their scope with `Security(authenticated, scopes=[...])`; the card
route, the hottest read, calls `caller_of` itself and documents the same with `secured`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from domain.clients import SCOPES, ClientDisabled
from domain.ids import TENANT
from infrastructure.failure_budget import FailureBudget
from infrastructure.log_context import bind_caller
from infrastructure.ratelimit import Decision, Rate, RateLimiter
from infrastructure.security_log import SecurityLog
from infrastructure.tokens import Claims, InvalidToken, TokenVerifier
from projections.clients import ClientQueries

SCOPE_DESCRIPTIONS = {
    "goals:read": "Read goals, progress and history",
    "goals:write": "Set goals, record progress, change status",
    "registry:read": "Read registered agents and cards",
    "registry:write": "Register agents and update cards",
    "audit:read": "Read audit anchors and proofs",
    "analytics:read": "Read analytics",
    "admin": "Manage clients and read security events of the tenant",
}
assert set(SCOPE_DESCRIPTIONS) == SCOPES


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: tenant and actor come from the token, never from headers."""

    tenant: str
    actor: str
    scopes: frozenset[str]


class Unauthorized(Exception):
    def __init__(self, reason: str, *, has_token: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.has_token = has_token


class Forbidden(Exception):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"the token lacks scope {' '.join(missing)}")
        self.missing = missing


class RateLimited(Exception):
    def __init__(self, decision: Decision, route_class: str) -> None:
        super().__init__(f"rate limit for {route_class} exceeded; retry in {decision.retry_after_s:.1f}s")
        self.decision = decision
        self.route_class = route_class


@dataclass(frozen=True)
class RateLimits:
    reads: Rate
    writes: Rate
    token: Rate
    search: Rate
    token_address: Rate
    bad_tokens: Rate  # per caller address: signature checks its tokens failed

    def for_class(self, route_class: str) -> Rate:
        rate: Rate = getattr(self, route_class)
        return rate


class Authenticator:
    """Verifies tokens (a bounded cache makes repeated tokens cheap) and refuses tokens of
    disabled clients: the disabled set is re-read from the read model at most every
    `refresh_s`, so a disable reaches every replica within that time. What cannot be a token
    is refused before any signature check; a signature check that fails counts against the
    caller's address (`bad_tokens`), so bad tokens cost no check once an address has failed
    too many, and valid tokens and garbage cost its address nothing."""

    def __init__(
        self,
        verifier: TokenVerifier,
        clients: ClientQueries,
        limiter: RateLimiter,
        limits: RateLimits,
        security: SecurityLog,
        *,
        refresh_s: float = 1.0,
        cache_size: int = 10_000,
        external: TokenVerifier | None = None,
    ) -> None:
        self.verifier = verifier
        self.external = external
        self.limiter = limiter
        self.limits = limits
        self.security = security
        self.bad_tokens = FailureBudget(limiter, limits.bad_tokens)
        self._clients = clients
        self._refresh_s = refresh_s
        self._disabled: set[str] = set()
        self._refreshed_at = 0.0
        self._cache: OrderedDict[str, Claims] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._refreshes = 0  # reads of the disabled set so far

    def claims_at_once(self, token: str) -> Claims | None:
        """The claims of a cached, unexpired token while the disabled set is fresh: no I/O.
        None when `claims()` would have to verify the token or re-read the disabled set."""
        now = time.time()
        if now - self._refreshed_at >= self._refresh_s:
            return None
        cached = self._cached(token, now)
        if cached is not None and cached.subject in self._disabled:
            raise ClientDisabled(cached.subject, cached.tenant)
        return cached

    def claims(self, token: str, address: str) -> Claims:
        """The claims of `token`, refused if its client is disabled; a token this process has
        not verified yet is verified first (see `_first_use`). May wait on I/O (the limiter,
        the disabled set): not for the event loop."""
        now = time.time()
        cached = self._cached(token, now)
        if cached is None:
            cached = self._first_use(token, address)
            with self._lock:
                self._cache[token] = cached
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if cached.subject in self._disabled_ids(now):
            raise ClientDisabled(cached.subject, cached.tenant)
        return cached

    def _cached(self, token: str, now: float) -> Claims | None:
        # Invariant: a signed token never changes, and revocation is per client (checked on every use).
        with self._lock:
            cached = self._cache.get(token)
            if cached is not None:
                self._cache.move_to_end(token)
        return cached if cached is not None and cached.expires_at > now else None

    def _first_use(self, token: str, address: str) -> Claims:
        """Verify a token this process has not verified yet. A token that fails its signature
        check (or its claims, after it) counts against the caller's `address`; what the
        verifier refuses before any check (`TokenVerifier.screen`: garbage) costs nothing and
        is not counted. Once the address has spent that budget, whatever it presents for the
        first time is refused unchecked (RateLimited) until the budget has room again, a
        valid token too: it cannot be told from a forgery without the check the budget is
        there to spare. So a shared address is held back only while someone behind it sends
        tokens that look like ours and are not, faster than the budget; its tokens verified
        before go on working."""
        key = f"bad-tokens:{address}"
        refusal = self.bad_tokens.spent(key)
        if refusal is not None:
            raise RateLimited(refusal, "bad_tokens")
        try:
            return self._verify(token)
        except InvalidToken as refused:
            if refused.checked:
                self.bad_tokens.failed(key)
            raise

    def _verify(self, token: str) -> Claims:
        """Our own tokens first; then, when configured, the external issuer's."""
        try:
            claims = self.verifier.verify(token)
            if TENANT.match(claims.tenant):
                return claims
            raise InvalidToken("invalid_claim:tenant")
        except InvalidToken as ours:
            if self.external is None or ours.reason not in {"unknown_key", "wrong_issuer"}:
                raise
            try:
                claims = self.external.verify(token)
            except InvalidToken as theirs:
                theirs.checked = theirs.checked or ours.checked  # either check counts
                raise
        if not TENANT.match(claims.tenant):
            raise InvalidToken("invalid_claim:tenant")
        # An external subject must never pass for one of our clients in the audit trail.
        return replace(claims, subject=f"ext:{claims.issuer}:{claims.subject}")

    def forget_disabled_cache(self) -> None:
        self._refreshed_at = 0.0

    def _disabled_ids(self, now: float) -> set[str]:
        # Invariant: a disable may take `refresh_s` to reach this replica (at once on its own).
        if now - self._refreshed_at < self._refresh_s:
            return self._disabled
        seen = self._refreshes
        with self._refreshing:
            # One read at a time: the requests that queued behind a read take its result.
            if self._refreshes == seen:
                started = time.time()
                self._disabled = self._clients.disabled_ids()
                self._refreshed_at = started
                self._refreshes += 1
        return self._disabled

    def check_rate_at_once(self, key: str, route_class: str) -> bool:
        """check_rate(), if the limiter can decide without I/O; False if it cannot (nothing
        was counted)."""
        decision = self.limiter.hit_at_once(f"{key}:{route_class}", self.limits.for_class(route_class))
        if decision is None:
            return False
        if not decision.allowed:
            raise RateLimited(decision, route_class)
        return True

    def check_rate(self, key: str, route_class: str) -> Decision:
        decision = self.limiter.hit(f"{key}:{route_class}", self.limits.for_class(route_class))
        if not decision.allowed:
            raise RateLimited(decision, route_class)
        return decision


def route_class(request: Request) -> str:
    """Which limit a request counts against: reads, writes or search."""
    if request.scope["path"].endswith("/search"):  # not request.url: it builds a URL object
        return "search"
    return "reads" if request.method in {"GET", "HEAD"} else "writes"


oauth2_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=SCOPE_DESCRIPTIONS)
    ),
    scheme_name="oauth2",
    auto_error=False,
)


async def authenticated(
    request: Request,
    security_scopes: SecurityScopes,
    authorization: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The caller of this request, with the scopes the route declared checked (see `caller`)."""
    return await caller(request, security_scopes.scopes, authorization)


async def caller_of(request: Request, scopes: Sequence[str]) -> Principal:
    """`authenticated`, called by a route itself rather than resolved by FastAPI (~20 µs less
    per request, for the hottest read). Such a route documents its security in `secured(scopes)`
    with the same scopes."""
    return await caller(request, scopes, request.headers.get("authorization") or None)


def secured(scopes: Sequence[str]) -> dict[str, Any]:
    """The OpenAPI `security` of a route that calls `caller_of(request, scopes)`: what
    `Security(authenticated, scopes=...)` would have documented."""
    return {"security": [{oauth2_scheme.scheme_name: list(scopes)}]}


async def caller(request: Request, scopes: Sequence[str], authorization: str | None) -> Principal:
    """The caller of this request, with `scopes` checked.

    On the event loop: a cached token and an in-process limiter cost microseconds, which is
    less than a hop to the thread pool. What may wait on I/O (a first verification, and a
    failed one counted against the caller's address; the disabled-client refresh; a Redis
    limiter) runs in the thread pool. Denials are handed to the security log, which never
    waits on the store; a flood of them is a row per client or address every few seconds."""
    auth: Authenticator = request.app.state.system.auth
    request_id = getattr(request.state, "request_id", None)
    address = request.client.host if request.client else "-"
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required", has_token=False)
    token = token.strip()
    try:
        claims = auth.claims_at_once(token)
        if claims is None:
            claims = await run_in_threadpool(auth.claims, token, address)
    except RateLimited as e:
        auth.security.record("rate_limited", request_id=request_id, address=address, route_class=e.route_class)
        raise
    except InvalidToken as e:
        auth.security.record(
            "auth_denied",
            request_id=request_id,
            address=address,
            reason=e.reason,
            logged={"path": request.url.path},
        )
        raise Unauthorized(e.reason, has_token=True) from None
    except ClientDisabled as e:
        auth.security.record("client_disabled", client_id=e.client_id, tenant=e.tenant, request_id=request_id)
        raise Unauthorized("client_disabled", has_token=True) from None
    bind_caller(claims.tenant, claims.subject)
    # Every request of a client counts against its budget, a refused one too: a client
    # asking again and again for what its scopes do not allow is limited like any other.
    kind = route_class(request)
    try:
        if not auth.check_rate_at_once(f"client:{claims.subject}", kind):
            await run_in_threadpool(auth.check_rate, f"client:{claims.subject}", kind)
    except RateLimited:
        auth.security.record(
            "rate_limited",
            client_id=claims.subject,
            tenant=claims.tenant,
            request_id=request_id,
            route_class=kind,
        )
        raise
    missing = sorted(set(scopes) - claims.scopes)
    if missing:
        auth.security.record(
            "scope_denied",
            client_id=claims.subject,
            tenant=claims.tenant,
            request_id=request_id,
            missing=missing,
        )
        raise Forbidden(missing)
    return Principal(tenant=claims.tenant, actor=claims.subject, scopes=claims.scopes)


GoalsReader = Annotated[Principal, Security(authenticated, scopes=["goals:read"])]
GoalsWriter = Annotated[Principal, Security(authenticated, scopes=["goals:write"])]
AnalyticsReader = Annotated[Principal, Security(authenticated, scopes=["analytics:read"])]
AdminCaller = Annotated[Principal, Security(authenticated, scopes=["admin"])]
RegistryReader = Annotated[Principal, Security(authenticated, scopes=["registry:read"])]
RegistryWriter = Annotated[Principal, Security(authenticated, scopes=["registry:write"])]
