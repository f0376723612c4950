"""Request-scoped inputs shared by the routes: who is asking, and command preconditions."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError

from application.goals import Idempotency
from domain.goals import Meta
from interfaces.bootstrap import System

TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Principal:
    tenant: str
    actor: str


async def system(request: Request) -> System:
    sys: System = request.app.state.system
    return sys


async def principal(
    request: Request,
    x_tenant: Annotated[str | None, Header(description="Tenant (until token auth replaces it).")] = None,
    x_actor: Annotated[str | None, Header(description="Who is acting, recorded on events.")] = None,
) -> Principal:
    """The caller: the one place tenant and actor are decided for every route."""
    tenant = x_tenant or request.app.state.system.settings.default_tenant
    if not TENANT.match(tenant):
        raise _bad_header("x-tenant", "letters, digits, '_', '.' or '-' (at most 64)")
    return Principal(tenant=tenant, actor=(x_actor or "anonymous")[:200])


async def idempotency(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retrying with the same key writes nothing and returns the first answer."),
    ] = None,
) -> Idempotency | None:
    if idempotency_key is None:
        return None
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        raise _bad_header("idempotency-key", "1-255 visible ASCII characters")
    body = await request.body()
    fingerprint = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + body
    ).hexdigest()
    return Idempotency(idempotency_key, fingerprint)


async def if_match(
    if_match: Annotated[
        str | None, Header(description="Expected aggregate version (412 when stale).")
    ] = None,
) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise _bad_header("if-match", 'an aggregate version number, e.g. "3"')
    return int(value)


async def meta(
    request: Request,
    who: Annotated[Principal, Depends(principal)],
    key: Annotated[Idempotency | None, Depends(idempotency)],
) -> Meta:
    return Meta(
        actor=who.actor, request_id=request.state.request_id, idempotency_key=key.key if key else None
    )


def _bad_header(name: str, expected: str) -> Exception:
    return RequestValidationError(
        [{"loc": ("header", name), "msg": f"must be {expected}", "type": "value_error"}]
    )


SystemDep = Annotated[System, Depends(system)]
PrincipalDep = Annotated[Principal, Depends(principal)]
IdempotencyDep = Annotated[Idempotency | None, Depends(idempotency)]
IfMatchDep = Annotated[int | None, Depends(if_match)]
MetaDep = Annotated[Meta, Depends(meta)]
