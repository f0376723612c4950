"""OAuth 2.0 client credentials (RFC 6749 §4.4), JWKS and server metadata (RFC 8414)."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from domain.clients import SCOPES, ClientDisabled
from infrastructure.client_secrets import looks_like_client_id
from infrastructure.log_context import bind_caller
from interfaces.bootstrap import System
from interfaces.http.auth import Authenticator, RateLimited
from interfaces.http.deps import SystemDep
from interfaces.http.json_body import StrictJSONRoute

router = APIRouter(tags=["oauth"], route_class=StrictJSONRoute)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(status: int, error: str, description: str, *, basic: bool = False) -> JSONResponse:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="a2a-goals"' if basic else 'Bearer realm="a2a-goals"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str, bool] | None:
    """(client_id, secret, used_basic) from client_secret_basic or client_secret_post."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote(client_id), unquote(secret), True) if sep else None
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"], False
    return None


@router.post(
    "/oauth/token",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "scope": {"type": "string"},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def token(request: Request, system: SystemDep) -> JSONResponse:
    """Exchange client credentials for a short-lived JWT access token."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
    raw = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    if any(len(v) > 1 for v in raw.values()):
        return _error(400, "invalid_request", "parameters must not repeat")
    # Rate limits (Redis), the secret check (scrypt) and denial records (database) block:
    # they run in the thread pool, never on the event loop.
    return await run_in_threadpool(_grant, request, system, {k: v[0] for k, v in raw.items()})


def _grant(request: Request, system: System, form: dict[str, str]) -> JSONResponse:
    auth: Authenticator = system.auth
    request_id = getattr(request.state, "request_id", None)
    address = request.client.host if request.client else "-"
    credentials = _client_credentials(request, form)
    client_id = credentials[0] if credentials else "-"
    # what denials record of the id sent: never something else (a secret pasted in its place)
    named = client_id if looks_like_client_id(client_id) else "-"
    try:
        # Per address first (random client ids must not buy fresh buckets), then per client
        # and address: a stranger guessing one client's secret does not lock the client out.
        # An id that is not of a client's form is no client: those share one bucket per address.
        auth.check_rate(f"token-address:{address}", "token_address")
        auth.check_rate(f"token:{named}:{address}", "token")
    except RateLimited:
        # looked up in the log only for the 429s recorded (one per client every few seconds)
        tenant = (lambda: system.clients.tenant_of(named)) if named != "-" else None
        auth.security.record(
            "rate_limited", client_id=named, tenant=tenant, request_id=request_id, route_class="token"
        )
        raise
    if credentials is None:
        return _error(401, "invalid_client", "client authentication is required", basic=True)
    if form.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type", "only client_credentials is supported")
    client_id, secret, basic = credentials
    try:
        attempt = system.clients.attempt(client_id, secret)
    except ClientDisabled as e:
        auth.security.record("client_disabled", client_id=named, tenant=e.tenant, request_id=request_id)
        return _error(401, "invalid_client", "client authentication failed", basic=basic)
    client = attempt.client
    if client is None:
        # a wrong secret for a real client goes to its tenant's admins: someone holds its id
        auth.security.record(
            "token_denied",
            client_id=named,
            tenant=attempt.tenant,
            request_id=request_id,
            reason="bad_credentials",
        )
        return _error(401, "invalid_client", "client authentication failed", basic=basic)
    granted = set(client.scopes)
    scope = form.get("scope")
    asked = set(scope.split()) if scope else granted
    if not asked <= granted:
        refused = sorted(asked - granted)
        auth.security.record(
            "token_denied",
            client_id=client_id,
            tenant=client.tenant,
            request_id=request_id,
            reason="invalid_scope",
            asked=refused,
        )
        return _error(400, "invalid_scope", f"not granted to this client: {' '.join(refused)}")
    bind_caller(client.tenant, client.client_id)
    access_token, expires_in = system.issuer.issue(client.client_id, client.tenant, asked)
    auth.security.record(
        "token_issued", client_id=client.client_id, tenant=client.tenant, request_id=request_id
    )
    body = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(sorted(asked)),
    }
    return JSONResponse(body, headers=NO_STORE)


@router.get("/.well-known/jwks.json")
def jwks(system: SystemDep) -> dict[str, Any]:
    """The public keys that verify our access tokens (old keys stay until they retire)."""
    keys: dict[str, Any] = system.keys.jwks()
    return keys


@router.get("/.well-known/oauth-authorization-server")
def metadata(request: Request, system: SystemDep) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    base = str(request.base_url).rstrip("/")
    return {
        "issuer": system.settings.token_issuer,
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": sorted(SCOPES),
        "response_types_supported": [],
    }
