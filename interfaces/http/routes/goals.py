"""Goal commands and queries. Routes only translate: validate, call one method, map."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse

from application.errors import GoalsNotFound
from application.goals import ProgressUpdate
from application.results import CommandResult
from domain.goals import AutoUpdate
from interfaces.http.alerts import system_alerts
from interfaces.http.answers import command_answer
from interfaces.http.auth import GoalsReader, GoalsWriter
from interfaces.http.deps import IdempotencyDep, IfMatchDep, SystemDep, command_meta
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.queries import AgentId, MinPosition, invalid_query, read_your_writes
from interfaces.http.schemas import (
    AlertsOut,
    AutoUpdateIn,
    AutoUpdateOut,
    BatchIn,
    BatchItemOut,
    BatchOut,
    CollectionStateOut,
    CommandOut,
    GoalListOut,
    GoalOut,
    GoalsIn,
    HistoryOut,
    ProgressIn,
    StatusIn,
)
from interfaces.http.types import MAX_POSITION, Instant
from projections.views import view_from_aggregate

# Aggregate versions are INTEGER (log positions: see MAX_POSITION): a number past either is
# refused (422) rather than sent to the database, which would refuse it with an error.
MAX_VERSION = 2**31 - 1
MAX_OFFSET = 2**31 - 1
router = APIRouter(prefix="/api/v1/goals", tags=["goals"], route_class=StrictJSONRoute)

PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown agent"},
    422: {"description": "Invalid fields"},
}


def _answer(result: CommandResult, *, created_status: int = 200, location: str | None = None) -> JSONResponse:
    created = result.first.created
    return command_answer(
        result, status=created_status if created else 200, location=location if created else None
    )


@router.post(
    "/agents/{agent_id}",
    response_model=CommandOut,
    status_code=status.HTTP_200_OK,
    responses={201: {"model": CommandOut, "description": "Goals created"}, 412: {}, 422: {}},
)
def set_goals(
    agent_id: AgentId,
    body: GoalsIn,
    system: SystemDep,
    who: GoalsWriter,
    request: Request,
    key: IdempotencyDep,
    expected: IfMatchDep,
) -> JSONResponse:
    """Set an agent's goals, or revise them (the goal version increments; history keeps all)."""
    result = system.goals.set_goals(
        who.tenant,
        agent_id,
        body.to_definition(),
        command_meta(request, who.actor, key),
        expected_version=expected,
        idempotency=key,
    )
    return _answer(result, created_status=201, location=f"/api/v1/goals/agents/{agent_id}")


@router.put(
    "/agents/{agent_id}/progress", response_model=CommandOut, responses={**PROBLEMS, 409: {}, 412: {}}
)
def record_progress(
    agent_id: AgentId,
    body: ProgressIn,
    system: SystemDep,
    who: GoalsWriter,
    request: Request,
    key: IdempotencyDep,
    expected: IfMatchDep,
) -> JSONResponse:
    """Record objective progress and/or KPI values; overall progress is derived (weighted)."""
    update = ProgressUpdate(
        agent_id, body.objective_progress, body.kpi_values, body.overall_progress, body.observed_at
    )
    result = system.goals.record_progress(
        who.tenant, update, command_meta(request, who.actor, key), expected_version=expected, idempotency=key
    )
    return _answer(result)


@router.put("/agents/{agent_id}/status", response_model=CommandOut, responses={**PROBLEMS, 409: {}, 412: {}})
def change_status(
    agent_id: AgentId,
    body: StatusIn,
    system: SystemDep,
    who: GoalsWriter,
    request: Request,
    key: IdempotencyDep,
    expected: IfMatchDep,
) -> JSONResponse:
    """Pause, resume, complete or cancel a goal; reopening a closed one needs `reopen: true`."""
    result = system.goals.change_status(
        who.tenant,
        agent_id,
        body.status,
        body.reason,
        command_meta(request, who.actor, key),
        reopen=body.reopen,
        expected_version=expected,
        idempotency=key,
    )
    return _answer(result)


@router.post("/agents/{agent_id}/auto-update", response_model=CommandOut, responses={**PROBLEMS, 412: {}})
def configure_auto_update(
    agent_id: AgentId,
    body: AutoUpdateIn,
    system: SystemDep,
    who: GoalsWriter,
    request: Request,
    key: IdempotencyDep,
    expected: IfMatchDep,
) -> JSONResponse:
    """Store how the agent's health and metrics endpoints are polled for KPI values: the
    URLs must pass the outbound guard, and each KPI mapping is checked field by field."""
    config = AutoUpdate(
        enabled=body.enabled,
        interval_s=body.interval_s,
        health_url=str(body.health_url) if body.health_url else None,
        metrics_url=str(body.metrics_url) if body.metrics_url else None,
        kpi_metrics=dict(body.kpi_metrics),  # the JSON form, parsed by AutoUpdate
    )
    result = system.collection.configure(
        who.tenant,
        agent_id,
        config,
        command_meta(request, who.actor, key),
        expected_version=expected,
        idempotency=key,
    )
    return _answer(result)


@router.get("/agents/{agent_id}/auto-update", response_model=AutoUpdateOut, responses={404: {}, 422: {}})
def auto_update(
    agent_id: AgentId, system: SystemDep, who: GoalsReader, min_position: MinPosition = None
) -> AutoUpdateOut:
    """The agent's auto-update configuration (null if none) and how its collection goes."""
    read_your_writes(system, ["goal_progress", "collection_targets"], min_position)
    view = system.progress.goal_json(who.tenant, agent_id)
    if view is None:
        raise GoalsNotFound(agent_id)
    config = json.loads(view)["auto_update"]
    state = system.collection_targets.state(who.tenant, agent_id) or {"state": "idle"}
    if config is None or not config["enabled"]:
        state = {**state, "state": "failing" if state.get("failing_since") else "idle"}
    return AutoUpdateOut(agent_id=agent_id, config=config, collection=CollectionStateOut(**state))


@router.get("/alerts", response_model=AlertsOut)
def alerts(system: SystemDep, who: GoalsReader, min_position: MinPosition = None) -> AlertsOut:
    """The tenant's goals that need a look: stagnant (no progress for STAGNATION_HOURS),
    failing metrics collection, and at risk of missing their target date, each with since when."""
    read_your_writes(system, ["goal_progress", "event_facts", "collection_targets"], min_position)
    return AlertsOut.model_validate(system_alerts(system, who.tenant))


@router.post("/progress:batch", response_model=BatchOut, responses={422: {}})
def record_progress_batch(
    body: BatchIn,
    system: SystemDep,
    who: GoalsWriter,
    request: Request,
    key: IdempotencyDep,
) -> BatchOut:
    """Progress for many agents in one transaction: all of it is recorded, or none of it."""
    updates = [
        ProgressUpdate(u.agent_id, u.objective_progress, u.kpi_values, u.overall_progress, u.observed_at)
        for u in body.updates
    ]
    result = system.goals.record_progress_batch(
        who.tenant, updates, command_meta(request, who.actor, key), idempotency=key
    )
    return BatchOut(
        items=[
            BatchItemOut(agent_id=i.agent_id, version=i.version, position=i.position) for i in result.items
        ],
        position=result.position,
        replayed=result.replayed,
    )


@router.get(
    "/agents/{agent_id}",
    response_model=GoalOut,
    responses={200: {"model": GoalOut}, 404: {}, 422: {}, 504: {}},
)
def get_goals(
    agent_id: AgentId,
    system: SystemDep,
    who: GoalsReader,
    min_position: MinPosition = None,
    as_of: Annotated[Instant | None, Query(description="Replay the log up to this RFC 3339 instant.")] = None,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="Replay the log up to this aggregate version.")
    ] = None,
) -> Response:
    """An agent's goals and progress; with `as_of` or `version`, as they were then (replayed)."""
    if as_of is not None or version is not None:
        if as_of is not None and version is not None:
            raise invalid_query("as_of", "give either as_of or version, not both")
        goals = system.goals.goals_at(who.tenant, agent_id, version=version, as_of=as_of)
        return JSONResponse({**view_from_aggregate(goals), "replayed": True})
    read_your_writes(system, ["goal_progress"], min_position)
    stored = system.progress.goal_json_and_version(who.tenant, agent_id)
    if stored is None:
        raise GoalsNotFound(agent_id)
    return Response(stored[0], media_type="application/json", headers={"ETag": f'"{stored[1]}"'})


@router.get("/", response_model=GoalListOut, responses={422: {}})
def list_goals(
    system: SystemDep,
    who: GoalsReader,
    status_filter: Annotated[
        str | None, Query(alias="status", pattern="^(active|paused|completed|cancelled)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    min_position: MinPosition = None,
) -> GoalListOut:
    """Every agent's goals in the tenant, by agent id, optionally filtered by status."""
    read_your_writes(system, ["goal_progress"], min_position)
    page = system.progress.list_goals(who.tenant, status=status_filter, limit=limit, offset=offset)
    return GoalListOut(
        items=[GoalOut.model_validate(v) for v in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get("/agents/{agent_id}/history", response_model=HistoryOut, responses={404: {}, 422: {}})
def history(
    agent_id: AgentId,
    system: SystemDep,
    who: GoalsReader,
    cursor: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="Return entries after this log position.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    action: Annotated[
        str | None,
        Query(
            pattern="^(goals_set|progress_updated|milestone_reached|status_changed|auto_update_configured"
            "|metrics_collection_failed|metrics_collection_recovered|goal_stagnant)$"
        ),
    ] = None,
    min_position: MinPosition = None,
) -> HistoryOut:
    """The agent's timeline, oldest first, cursor-paged by log position."""
    read_your_writes(system, ["goal_progress", "event_facts"], min_position)
    if system.progress.goal_json(who.tenant, agent_id) is None:
        raise GoalsNotFound(agent_id)
    page = system.history.history(who.tenant, agent_id, after=cursor, limit=limit, action=action)
    return HistoryOut.model_validate(
        {"agent_id": agent_id, "items": page.items, "next_cursor": page.next_cursor}
    )
