"""The registry's public documents, no token: its own card, the index of public agents (for
peers to sync incrementally) and each public agent's card."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from infrastructure.card_cache import CachedCard
from interfaces.bootstrap import System
from interfaces.http.card_responses import (
    CARD_MAX_AGE_S,
    A2AVersion,
    generation_for,
    public_at_once,
    public_card,
    respond,
)
from interfaces.http.deps import SystemDep
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.types import Instant

router = APIRouter(tags=["registry (public)"], route_class=StrictJSONRoute)
PublicId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The agent's public id.")]


def base_url(system: System, request: Request) -> str:
    """REGISTRY_BASE_URL, or the base this request reached (no proxy in front)."""
    return (system.settings.registry_base_url or str(request.base_url)).rstrip("/")


def public_card_url(base: str, public_id: str) -> str:
    return f"{base}/.well-known/agents/{public_id}/agent-card.json"


@router.get("/.well-known/agents/{public_id}/agent-card.json", responses={304: {}, 404: {}})
async def public_agent_card(
    public_id: PublicId,
    system: SystemDep,
    a2a_version: A2AVersion = None,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """A public agent's card, with the goals extension and this registry's signature."""
    found = public_at_once(system, public_id, a2a_version)
    if found is not None:
        return respond(found, if_none_match, public=True)
    return await run_in_threadpool(public_card, system, public_id, a2a_version, if_none_match)


@router.get("/.well-known/agents/index.json")
def public_index(
    system: SystemDep,
    request: Request,
    response: Response,
    updated_since: Annotated[Instant | None, Query(description="Only entries changed at or after this.")] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    include_deleted: Annotated[bool, Query(description="Tombstones of agents no longer public.")] = False,
) -> dict[str, Any]:
    """Public agents, oldest change first, cursor-paged: what a peer registry syncs from."""
    page = system.agent_cards.public_index(
        # The stored instants are UTC text: compared as text, the bound must be UTC too.
        updated_since=updated_since.astimezone(UTC).isoformat() if updated_since else None,
        cursor=cursor,
        limit=limit,
        include_deleted=include_deleted,
    )
    base = base_url(system, request)
    for item in page.items:
        if not item["deleted"]:
            item["card_url"] = public_card_url(base, item["id"])
    response.headers["Cache-Control"] = f"public, max-age={CARD_MAX_AGE_S}"
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/.well-known/agent-card.json")
def registry_card(
    system: SystemDep,
    request: Request,
    a2a_version: A2AVersion = None,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """This registry's own A2A card (v1.0; v0.3 for `A2A-Version: 0.3`), signed."""
    card = system.card_server.own(own_card(base_url(system, request)), generation_for(a2a_version))
    return respond(CachedCard(card.body, card.etag, card.last_modified, public=True), if_none_match, public=True)


def own_card(base: str) -> dict[str, Any]:
    return {
        "name": "a2a-goals registry",
        "description": "A registry of A2A agents and their goals: discovery by skill, text and progress,"
        " with every card signed by this registry.",
        "supportedInterfaces": [
            {"url": f"{base}/api/v1", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}
        ],
        "provider": {"organization": "a2a-goals", "url": base},
        "version": "1.0.0",
        "documentationUrl": f"{base}/docs",
        "capabilities": {"streaming": False, "pushNotifications": False},
        "securitySchemes": {
            "oauth2": {
                "oauth2SecurityScheme": {
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": f"{base}/oauth/token",
                            "scopes": {"registry:read": "Read registered agents and cards"},
                        }
                    }
                }
            }
        },
        "securityRequirements": [{"schemes": {"oauth2": {"list": ["registry:read"]}}}],
        "defaultInputModes": ["application/json"],
        "defaultOutputModes": ["application/json"],
        "skills": [
            {
                "id": "agent-discovery",
                "name": "Agent discovery",
                "description": "Find agents by text, skill, tag, goal status and progress.",
                "tags": ["registry", "discovery", "search"],
            },
            {
                "id": "goal-progress",
                "name": "Goal progress",
                "description": "Read agents' goals, progress and milestones.",
                "tags": ["goals", "progress"],
            },
        ],
    }
