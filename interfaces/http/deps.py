"""Request-scoped inputs shared by the routes: the system, and command preconditions."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError

from application.command_loop import Idempotency
from application.preconditions import IfMatch
from domain.meta import Meta
from interfaces.bootstrap import System

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}\Z")  # \Z: $ would let a trailing newline in


async def system(request: Request) -> System:
    sys: System = request.app.state.system
    return sys


async def idempotency(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=r"^[\x21-\x7e]{1,255}$",
            description="Retrying with the same key writes nothing and returns the first answer.",
        ),
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


# RFC 9110 §13.1.1: "*", or entity tags (weak ones allowed, never matching); a bare version
# number is taken too.
IF_MATCH = r'^(\*|\s*(W/)?"[\x21\x23-\x7e]*"(\s*,\s*(W/)?"[\x21\x23-\x7e]*")*\s*|[0-9]{1,18})$'
_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|\Z)')


async def if_match(
    if_match: Annotated[
        str | None,
        Header(
            pattern=IF_MATCH,
            description='Apply only to this aggregate version: an ETag such as "3" (several may be'
            " listed), or * for any existing version; 412 when none is current. Weak tags never match.",
        ),
    ] = None,
) -> IfMatch | None:
    if if_match is None:
        return None
    value = if_match.strip()
    if value == "*":
        return IfMatch(any_version=True)
    if value.isdigit():
        return IfMatch.version(int(value))
    strong = {tag for weak, tag in _ENTITY_TAG.findall(value) if not weak}
    return IfMatch(frozenset(int(tag) for tag in strong if tag.isdigit() and len(tag) <= 18))


def command_meta(request: Request, actor: str, key: Idempotency | None) -> Meta:
    """What every event of this request records about who asked and in which request."""
    return Meta(actor=actor, request_id=request.state.request_id, idempotency_key=key.key if key else None)


def _bad_header(name: str, expected: str) -> Exception:
    return RequestValidationError(
        [{"loc": ("header", name), "msg": f"must be {expected}", "type": "value_error"}]
    )


SystemDep = Annotated[System, Depends(system)]
IdempotencyDep = Annotated[Idempotency | None, Depends(idempotency)]
IfMatchDep = Annotated[IfMatch | None, Depends(if_match)]
