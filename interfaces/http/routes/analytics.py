"""Analytics and health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from application.errors import GoalsNotFound
from interfaces.http.auth import AnalyticsReader
from interfaces.http.deps import SystemDep
from interfaces.http.routes.goals import AgentId, MinPosition, _fresh, _one_of
from interfaces.http.schemas import AGENT_ID_PATTERN
from projections.analytics import DEFAULT_WINDOW_DAYS
from projections.analytics import Bucket as SeriesBucket
from projections.event_facts import EVENT_TYPES, Bucket

router = APIRouter(prefix="/api/v1/goals", tags=["analytics"])


@router.get("/analytics")
def system_analytics(
    system: SystemDep, who: AnalyticsReader, min_position: MinPosition = None
) -> dict[str, Any]:
    """Agents with goals, counts by status, mean and median progress, milestones achieved, the
    progress distribution, milestones per day and week, status transitions, stagnant and at-risk goals."""
    _fresh(system, ["goal_progress", "event_facts"], min_position)
    return system.analytics.system(
        who.tenant, extended=True, stagnation_hours=system.settings.stagnation_hours
    )


@router.get("/analytics/events", responses={422: {}, 504: {}})
def event_analytics(
    system: SystemDep,
    who: AnalyticsReader,
    event_type: Annotated[
        str | None, Query(alias="type", description=f"Only events of this type: {', '.join(EVENT_TYPES)}.")
    ] = None,
    agent: Annotated[
        str | None, Query(pattern=AGENT_ID_PATTERN, description="Only this agent's events.")
    ] = None,
    start: Annotated[
        datetime | None, Query(alias="from", description="Events recorded at or after this RFC 3339 instant.")
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="Events recorded before this RFC 3339 instant.")
    ] = None,
    bucket: Annotated[Bucket, Query(description="Bucket width (UTC; weeks start on Monday).")] = "hour",
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Goal events per time bucket: counts (by type too, unless filtered by type) and the
    avg/min/max of overall progress (ProgressRecorded) and of milestone thresholds (MilestoneReached)."""
    if event_type is not None and event_type not in EVENT_TYPES:
        raise _one_of("type", "type", msg=f"must be one of {', '.join(EVENT_TYPES)}")
    for field, moment in (("from", start), ("to", end)):
        if moment is not None and moment.utcoffset() is None:
            raise _one_of(field, field, msg="must carry a time zone offset (RFC 3339)")
    if start is not None and end is not None and start > end:
        raise _one_of("from", "from", msg="must not be after to")
    _fresh(system, ["event_facts"], min_position)
    buckets = system.events.buckets(
        who.tenant, type=event_type, agent=agent, start=start, end=end, bucket=bucket
    )
    return {
        "bucket": bucket,
        "type": event_type,
        "agent": agent,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "buckets": buckets,
    }


@router.get("/analytics/{agent_id}", responses={404: {}})
@router.get("/agents/{agent_id}/analytics", responses={404: {}})
def agent_analytics(
    agent_id: AgentId,
    system: SystemDep,
    who: AnalyticsReader,
    min_position: MinPosition = None,
    window_days: Annotated[
        int, Query(ge=1, le=365, description="Days of progress the velocity and series cover.")
    ] = DEFAULT_WINDOW_DAYS,
    bucket: Annotated[SeriesBucket, Query(description="Bucket of the progress series.")] = "day",
) -> dict[str, Any]:
    """Progress per objective, milestones, number of updates, time spent in each status, the
    velocity (Theil-Sen, points per day), the forecast completion, at-risk, and the progress series.

    Also served under the agent's own path, where an agent named `events` is not taken for
    `/analytics/events`."""
    _fresh(system, ["goal_progress", "event_facts"], min_position)
    found = system.analytics.agent(who.tenant, agent_id, window_days=window_days, bucket=bucket)
    if found is None:
        raise GoalsNotFound(agent_id)
    return found


@router.get("/health", tags=["health"])
def health(system: SystemDep) -> JSONResponse:
    """Liveness of the event store, the read models and the projections (503 when unhealthy).

    Public, so it names states and lags only; errors are on the operator endpoint. `analytics`
    says whether the system analytics of the busiest tenants were computed at start-up
    ("warming", "warm", "failed", or "on demand" when the server does not warm them).
    `projector` says what an in-process runner does ("running", "retrying" since when on what
    class of error, "stopped") and whether it is advancing: behind the log and not advancing
    for PROJECTION_STALL_S is a 503."""
    log_position = system.goals.log_position()
    projections = [
        {
            "name": s.name,
            "position": s.position,
            "lag_events": max(0, log_position - s.position),
            "state": s.state,
        }
        for s in system.runner.statuses()
    ]
    failed = [p for p in projections if p["state"] == "failed"]
    projector = system.runner.activity()
    behind = any(p["lag_events"] for p in projections if p["state"] != "failed")
    stopped = system.settings.run_projections and not projector.keeps_up(behind)
    body = {
        "status": "degraded" if failed or stopped else "ok",
        "runner": "in-process" if system.settings.run_projections else "external",
        "projector": projector.report() if system.settings.run_projections else None,
        "store": "postgresql" if system.settings.is_postgres else "sqlite",
        "log_position": log_position,
        "projections": projections,
        "analytics": system.analytics_warmth,
    }
    unhealthy = bool(failed) or stopped
    return JSONResponse(
        body, status_code=503 if unhealthy else 200, headers={"Retry-After": "5"} if unhealthy else None
    )
