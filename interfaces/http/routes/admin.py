"""Administration of the caller's tenant: clients and security events (scope `admin`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.clients import SCOPES
from domain.ids import TENANT
from infrastructure.client_secrets import CLIENT_ID_PATTERN
from interfaces.http.auth import AdminCaller
from interfaces.http.deps import SystemDep, command_meta
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.types import StorableText
from interfaces.wiring.erasure import build_erasure
from projections.freshness import wait_for_position

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], route_class=StrictJSONRoute)
ClientId = Annotated[str, Path(pattern=CLIENT_ID_PATTERN)]
TenantName = Annotated[str, Path(pattern=TENANT.pattern.replace("\\Z", "$"))]


Scope = Literal[
    "goals:read", "goals:write", "registry:read", "registry:write", "audit:read", "analytics:read", "admin"
]
assert set(get_args(Scope)) == SCOPES


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), StorableText]
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))


class DisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=500), StorableText] = ""


class CredentialsOut(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; only a hash is stored.")
    tenant: str
    scopes: list[str]
    position: int


@router.get("/clients")
def list_clients(system: SystemDep, who: AdminCaller) -> dict[str, Any]:
    """The tenant's clients (never their secrets)."""
    return {"items": system.client_queries.list(who.tenant)}


@router.post("/clients", status_code=201, response_model=CredentialsOut)
def create_client(body: ClientIn, system: SystemDep, who: AdminCaller) -> CredentialsOut:
    """Register a client in the caller's tenant; its secret is in this answer only."""
    issued = system.clients.create(who.tenant, body.name, list(body.scopes), who.actor)
    return CredentialsOut(
        client_id=issued.client_id,
        client_secret=issued.client_secret,
        tenant=issued.tenant,
        scopes=list(issued.scopes),
        position=issued.position,
    )


@router.post("/clients/{client_id}/rotate-secret", response_model=CredentialsOut)
def rotate_secret(client_id: ClientId, system: SystemDep, who: AdminCaller) -> CredentialsOut:
    """A new secret for the client; the old one stops working at once."""
    issued = system.clients.rotate_secret(client_id, who.actor, tenant=who.tenant)
    return CredentialsOut(
        client_id=issued.client_id,
        client_secret=issued.client_secret,
        tenant=issued.tenant,
        scopes=list(issued.scopes),
        position=issued.position,
    )


@router.post("/clients/{client_id}/disable")
def disable_client(
    client_id: ClientId, body: DisableIn, request: Request, system: SystemDep, who: AdminCaller
) -> dict[str, Any]:
    """Disable a client: no new tokens, and its live tokens are refused from now on."""
    position = system.clients.disable(client_id, body.reason, who.actor, tenant=who.tenant)
    wait_for_position(system.store, ["oauth_clients"], position, system.settings.min_position_timeout_s)
    system.auth.forget_disabled_cache()
    return {"client_id": client_id, "disabled": True, "position": position}


@router.get("/security/denials")
def denials(
    system: SystemDep, who: AdminCaller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Recent denied requests in the tenant: wrong secrets and disabled clients, missing scopes,
    rate limits. The operator tenant's admins also see those that name no tenant (tokens that
    failed verification, client ids no client has)."""
    operator = who.tenant == system.settings.operator_tenant
    return {"items": system.security.recent_denials(who.tenant, limit=limit, unattributed=operator)}


class ErasedOut(BaseModel):
    tenant: str
    erased: bool
    key_id: str = Field(description="Hex id of the data key destroyed ('' if the tenant had none).")
    rows_removed: int = Field(description="Read-model rows of the tenant removed.")
    position: int


@router.post("/tenants/{tenant}/erase", response_model=ErasedOut, responses={404: {}, 409: {}, 410: {}, 422: {}})
def erase_tenant(tenant: TenantName, request: Request, system: SystemDep, who: AdminCaller) -> ErasedOut:
    """Erase a tenant (operator admins; 404 to anyone else): its data key is destroyed, so no
    payload of its events can be read again, and its read-model rows, search documents and
    cached cards are removed. The events stay in the log, sealed; audit proofs stay valid.
    409 when ENCRYPTION is off, or for the operator tenant. Cannot be undone
    (docs/security.md#erasure)."""
    if who.tenant != system.settings.operator_tenant:
        raise HTTPException(404, "Not Found")
    done = build_erasure(system).erase(tenant, command_meta(request, who.actor, None))
    return ErasedOut(
        tenant=done.tenant, erased=True, key_id=done.key_id, rows_removed=done.rows_removed, position=done.position
    )
