"""Analytics and health."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from application.anchoring import anchoring_state
from application.errors import GoalsNotFound
from infrastructure.database_errors import is_temporary
from interfaces.http.auth import AnalyticsReader
from interfaces.http.deps import SystemDep
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.queries import AgentId, MinPosition, invalid_query, read_your_writes
from interfaces.http.schemas import AGENT_ID_PATTERN
from interfaces.http.types import Instant
from projections.analytics import DEFAULT_WINDOW_DAYS
from projections.analytics import Bucket as SeriesBucket
from projections.audit_log_queries import AuditLogQueries
from projections.event_facts import EVENT_TYPES
from projections.event_facts_queries import Bucket
from projections.status import read_model_lags

if TYPE_CHECKING:
    from interfaces.bootstrap import System

router = APIRouter(prefix="/api/v1/goals", tags=["analytics"], route_class=StrictJSONRoute)


@router.get("/analytics")
def system_analytics(
    system: SystemDep, who: AnalyticsReader, min_position: MinPosition = None
) -> dict[str, Any]:
    """Agents with goals, counts by status, mean and median progress, milestones achieved, the
    progress distribution, milestones per day and week, status transitions, stagnant and at-risk goals."""
    read_your_writes(system, ["goal_progress", "event_facts"], min_position)
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
        Instant | None, Query(alias="from", description="Events recorded at or after this RFC 3339 instant.")
    ] = None,
    end: Annotated[
        Instant | None, Query(alias="to", description="Events recorded before this RFC 3339 instant.")
    ] = None,
    bucket: Annotated[Bucket, Query(description="Bucket width (UTC; weeks start on Monday).")] = "hour",
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Goal events per time bucket: counts (by type too, unless filtered by type) and the
    avg/min/max of overall progress (ProgressRecorded) and of milestone thresholds (MilestoneReached)."""
    if event_type is not None and event_type not in EVENT_TYPES:
        raise invalid_query("type", f"must be one of {', '.join(EVENT_TYPES)}")
    if start is not None and end is not None and start > end:
        raise invalid_query("from", "must not be after to")
    read_your_writes(system, ["event_facts"], min_position)
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
    read_your_writes(system, ["goal_progress", "event_facts"], min_position)
    found = system.analytics.agent(who.tenant, agent_id, window_days=window_days, bucket=bucket)
    if found is None:
        raise GoalsNotFound(agent_id)
    return found


@router.get("/health", tags=["health"])
def health(system: SystemDep) -> JSONResponse:
    """Liveness of the database, the read models and the projections (503 when unhealthy, at
    once while the database is down).

    Public, so it names states and lags in seconds only: no positions and no event counts
    (both tell the log's volume of events) and no errors; operators have GET
    /api/v1/admin/projections. Each read model says whether it is `advancing`: not failed,
    and not behind the log for PROJECTION_STALL_S (and a poll) without its tracking row
    moving, whichever process runs it; one that is not makes health a 503. `projector` says
    what an in-process runner does ("running", "retrying" since when on what class of error,
    "stopped"), and one stopped, or behind and not advancing, is a 503 too. `analytics` says whether the system analytics
    of the busiest tenants were computed at start-up ("warming", "warm", "failed", or
    "on demand" when the server does not warm them). `anchoring` says whether the audit log's
    roots reach the chain: "ok", "waiting" (nothing anchored yet), "behind" (leaves wait and
    no anchor was confirmed for three periods: the chain is down or slow; writes go on), or
    "off" (ANCHORING=off); it never makes health a 503."""
    settings = system.settings
    projector = system.runner.activity()
    about = {
        "runner": "in-process" if settings.run_projections else "external",
        "projector": projector.report() if settings.run_projections else None,
        "store": "postgresql" if settings.is_postgres else "sqlite",
        "analytics": system.analytics_warmth,
    }
    try:
        lags = read_model_lags(system.runner.statuses(), system.goals.read_log, system.goals.log_position())
        about["anchoring"] = _anchoring(system)
    except Exception as error:
        if not is_temporary(error):  # a fault of ours, not an outage: a 500, logged
            raise
        return _health({"status": "unavailable", "database": "down", **about}, unhealthy=True)
    patience_s, now = settings.projection_stall_s + settings.projection_poll_s, time.time()
    projections = [
        {
            "name": lag.status.name,
            "state": lag.status.state,
            "lag_s": lag.lag_s,
            "advancing": lag.advancing(patience_s, now),
        }
        for lag in lags
    ]
    failed = any(p["state"] == "failed" for p in projections)
    stalled = not all(p["advancing"] for p in projections if p["state"] != "failed")
    behind = any(lag.lag_events for lag in lags if lag.status.state != "failed")
    stopped = settings.run_projections and not projector.keeps_up(behind)
    unhealthy = failed or stalled or stopped
    body = {
        "status": "degraded" if unhealthy else "ok",
        "database": "up",
        **about,
        "projections": projections,
    }
    return _health(body, unhealthy=unhealthy)


def _anchoring(system: System) -> str:
    settings = system.settings
    if system.anchoring is None:
        return "off"
    patience_s = 3 * settings.anchor_every_seconds + settings.anchor_check_s + settings.chain_timeout_s
    leaves = AuditLogQueries(system.store).size()
    return anchoring_state(leaves, system.anchors.last_confirmed(), datetime.now(UTC), patience_s)


def _health(body: dict[str, Any], *, unhealthy: bool) -> JSONResponse:
    return JSONResponse(
        body, status_code=503 if unhealthy else 200, headers={"Retry-After": "5"} if unhealthy else None
    )
