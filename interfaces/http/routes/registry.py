"""Registry commands and queries. Routes only translate: validate, call one method, map."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from application.registry import AgentNotFound, CardSource
from application.registry_history import card_history
from application.results import CommandResult
from interfaces.bootstrap import System
from interfaces.http.answers import command_answer
from interfaces.http.auth import RegistryReader, RegistryWriter, caller_of, secured
from interfaces.http.card_params import AGENT_ID_DESCRIPTION, CARD_PARAMETERS, card_params
from interfaces.http.card_responses import card_at_once, card_response, respond
from interfaces.http.deps import IdempotencyDep, IfMatchDep, SystemDep, command_meta
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.queries import MinPosition, read_your_writes
from interfaces.http.registry_schemas import (
    AgentDeleteIn,
    AgentHistoryOut,
    AgentIn,
    AgentListOut,
    AgentOut,
    AgentUpdateIn,
    GoalStatus,
)
from interfaces.http.routes.goals import MAX_VERSION
from interfaces.http.schemas import AGENT_ID_PATTERN, CommandOut
from interfaces.http.search_metrics import timed_search
from interfaces.http.types import Instant
from projections.search.index import SearchQuery

router = APIRouter(prefix="/api/v1/agents", tags=["registry"], route_class=StrictJSONRoute)
AgentPath = Path(
    pattern=AGENT_ID_PATTERN,
    description=AGENT_ID_DESCRIPTION,
)
PROBLEMS: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown agent"}, 422: {}}
READ_MODELS = ["agent_cards"]


def _answer(result: CommandResult, *, location: str | None = None) -> JSONResponse:
    """201 and the agent's Location for a registration (first or again), 200 otherwise."""
    return command_answer(result, status=201 if location else 200, location=location)


CARD_SCOPES = ("registry:read",)


# First of the router's routes: FastAPI tries them in order (~2 µs each), and this is the
# hottest read.
@router.get(
    "/{agent_id}/card",
    responses={
        200: {"content": {"application/json": {}}},
        304: {"description": "Not modified"},
        **PROBLEMS,
        504: {},
    },
    openapi_extra={"parameters": CARD_PARAMETERS, **secured(CARD_SCOPES)},
)
async def get_agent_card(request: Request) -> Response:
    """The card alone, as served to A2A clients: v1.0 (or v0.3 for `A2A-Version: 0.3`), with
    the goals extension and this registry's signature; ETag and 304."""
    # Invariant: CARD_SCOPES is both what is enforced and what /openapi.json says, and the caller
    # is decided before the parameters are read, as FastAPI orders Security() (no token and a bad
    # id: 401; a client's 422s count against its limit); test_the_card_route_checks_the_caller_
    # as_documented_before_its_parameters breaks otherwise.
    who = await caller_of(request, CARD_SCOPES)
    params = card_params(request)  # the parameters CARD_PARAMETERS documents
    system: System = request.app.state.system
    if not params.min_position and (
        found := card_at_once(system, who.tenant, params.agent_id, params.a2a_version, params.original)
    ):
        return respond(found, params.if_none_match, public=False)
    return await run_in_threadpool(
        _card_after,
        system,
        who.tenant,
        params.agent_id,
        params.a2a_version,
        params.original,
        params.if_none_match,
        params.min_position,
    )


def _card_after(
    system: System,
    tenant: str,
    agent_id: str,
    a2a_version: str | None,
    original: bool,
    if_none_match: str | None,
    min_position: int | None,
) -> Response:
    """The card once the read models have reached `min_position` (in the thread pool)."""
    read_your_writes(system, READ_MODELS, min_position)
    return card_response(system, tenant, agent_id, a2a_version, original, if_none_match)


@router.post("", response_model=CommandOut, status_code=201, responses={409: {}, 422: {}})
def register_agent(
    body: AgentIn, system: SystemDep, who: RegistryWriter, request: Request, key: IdempotencyDep
) -> JSONResponse:
    """Register an agent's A2A card (inline or fetched from `card_url`); 409 if the id exists."""
    result = system.registry.register(
        who.tenant,
        body.agent_id,
        CardSource(body.card, body.url()),
        body.visibility,
        command_meta(request, who.actor, key),
        idempotency=key,
    )
    return _answer(result, location=f"/api/v1/agents/{body.agent_id}")


@router.put("/{agent_id}", response_model=CommandOut, responses={**PROBLEMS, 409: {}, 412: {}})
def update_agent(
    agent_id: Annotated[str, AgentPath],
    body: AgentUpdateIn,
    system: SystemDep,
    who: RegistryWriter,
    request: Request,
    key: IdempotencyDep,
    expected: IfMatchDep,
) -> JSONResponse:
    """Replace the card and/or the visibility; an unchanged card writes nothing."""
    source = CardSource(body.card, body.url()) if body.card is not None or body.card_url else None
    result = system.registry.update(
        who.tenant,
        agent_id,
        source,
        body.visibility,
        command_meta(request, who.actor, key),
        expected_version=expected,
        idempotency=key,
    )
    return _answer(result)


@router.delete("/{agent_id}", response_model=CommandOut, responses={**PROBLEMS, 409: {}, 412: {}})
def deregister_agent(
    agent_id: Annotated[str, AgentPath],
    system: SystemDep,
    who: RegistryWriter,
    request: Request,
    key: IdempotencyDep,
    expected: IfMatchDep,
    body: AgentDeleteIn | None = None,
) -> JSONResponse:
    """Remove the agent from the registry (its history stays in the log)."""
    result = system.registry.deregister(
        who.tenant,
        agent_id,
        command_meta(request, who.actor, key),
        reason=body.reason if body else "",
        expected_version=expected,
        idempotency=key,
    )
    return _answer(result)


@router.get("/{agent_id}", response_model=AgentOut, responses={**PROBLEMS, 504: {}})
def get_agent(
    agent_id: Annotated[str, AgentPath], system: SystemDep, who: RegistryReader, min_position: MinPosition = None
) -> dict[str, Any]:
    """The record: the card as submitted, its hash, signature state, version, times, origin."""
    read_your_writes(system, READ_MODELS, min_position)
    record = system.agent_cards.visible(who.tenant, agent_id)
    if record is None:
        raise AgentNotFound(agent_id)
    return record.view(who.tenant)


@router.get("/{agent_id}/history", response_model=AgentHistoryOut, responses=PROBLEMS)
def get_agent_history(
    agent_id: Annotated[str, AgentPath],
    system: SystemDep,
    who: RegistryReader,
    after_version: Annotated[int, Query(ge=0, le=MAX_VERSION, description="Changes after this version.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Every change of one of your agents (deregistered ones included), oldest first, with
    actor, time and a field-level card diff, read from the log. Another tenant's history is
    theirs: its earlier cards, actors and reasons are never shown."""
    items = card_history(system.goals, who.tenant, agent_id, after_version=after_version, limit=limit)
    return {"agent_id": agent_id, "items": items}


@router.get("", response_model=AgentListOut, responses={422: {}, 503: {}, 504: {}})
def list_agents(
    system: SystemDep,
    who: RegistryReader,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="Text: relevance order.")] = None,
    skill: Annotated[str | None, Query(max_length=200, description="A skill id or name, exactly.")] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    goal_status: Annotated[GoalStatus | None, Query()] = None,
    min_progress: Annotated[float | None, Query(ge=0, le=100)] = None,
    max_progress: Annotated[float | None, Query(ge=0, le=100)] = None,
    owned: Annotated[bool, Query(description="Only the caller's own agents.")] = False,
    reachable: Annotated[
        bool | None,
        Query(description="Only agents whose own card URL answered (true) or not (false) at the last check."),
    ] = None,
    updated_since: Annotated[Instant | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """The caller's agents and every public agent (peers' copies included): list and search,
    with the exact `total` of matches and a `next_cursor`."""
    read_your_writes(system, [*READ_MODELS, system.search_model], min_position)
    query = SearchQuery(
        q=q,
        skill=skill,
        tag=tag,
        goal_status=goal_status,
        min_progress=min_progress,
        max_progress=max_progress,
        owned=owned,
        reachable=reachable,
        updated_since=updated_since.astimezone(UTC).isoformat() if updated_since else None,
        cursor=cursor,
        limit=limit,
    )
    page = timed_search(system.search, who.tenant, query)
    records = system.agent_cards.records(who.tenant, [(h.tenant, h.agent_id) for h in page.items])
    return {
        "items": [r.view(who.tenant) for r in records],
        "total": page.total,
        "next_cursor": page.next_cursor,
    }
