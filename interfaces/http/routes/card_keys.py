"""The public keys a tenant's agents sign their cards with (besides a `jku` on a card's own
origin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from domain.card_keys import MAX_KEYS
from interfaces.http.auth import RegistryReader, RegistryWriter
from interfaces.http.deps import SystemDep, command_meta
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.schemas import _In

router = APIRouter(prefix="/api/v1/registry/keys", tags=["registry"], route_class=StrictJSONRoute)


class CardKeysIn(_In):
    keys: list[dict[str, Any]] = Field(
        max_length=MAX_KEYS, description="Public JWKs (RFC 7517), each with a unique kid; no private members."
    )


@router.put("", responses={422: {}, 409: {}})
def set_card_keys(body: CardKeysIn, system: SystemDep, who: RegistryWriter, request: Request) -> dict[str, Any]:
    """Replace the keys a card of this tenant may be signed with; cards registered from now
    on are verified against them too."""
    written = system.card_keys.set_keys(who.tenant, body.keys, command_meta(request, who.actor, None))
    return {"version": written.version, "position": written.position}


@router.get("")
def get_card_keys(system: SystemDep, who: RegistryReader) -> dict[str, Any]:
    return {"keys": system.card_keys.keys(who.tenant)}
