"""Analytics and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from application.errors import GoalsNotFound
from interfaces.http.auth import AnalyticsReader
from interfaces.http.deps import SystemDep
from interfaces.http.routes.goals import AgentId, MinPosition, _fresh

router = APIRouter(prefix="/api/v1/goals", tags=["analytics"])


@router.get("/analytics")
def system_analytics(
    system: SystemDep, who: AnalyticsReader, min_position: MinPosition = None
) -> dict[str, Any]:
    """Agents with goals, counts by status, mean and median progress, milestones achieved."""
    _fresh(system, ["goal_progress"], min_position)
    return system.analytics.system(who.tenant)


@router.get("/analytics/{agent_id}", responses={404: {}})
def agent_analytics(
    agent_id: AgentId, system: SystemDep, who: AnalyticsReader, min_position: MinPosition = None
) -> dict[str, Any]:
    """Progress per objective, milestones, number of updates and time spent in each status."""
    _fresh(system, ["goal_progress"], min_position)
    found = system.analytics.agent(who.tenant, agent_id)
    if found is None:
        raise GoalsNotFound(agent_id)
    return found


@router.get("/health", tags=["health"])
def health(system: SystemDep) -> JSONResponse:
    """Liveness of the event store, the read models and the projections (503 when unhealthy)."""
    log_position = system.goals.log_position()
    projections = [
        {
            "name": s.name,
            "position": s.position,
            "lag_events": max(0, log_position - s.position),
            "state": s.state,
            "error": s.error,
        }
        for s in system.runner.statuses()
    ]
    failed = [p for p in projections if p["state"] == "failed"]
    body = {
        "status": "degraded" if failed else "ok",
        "store": "postgresql" if system.settings.is_postgres else "sqlite",
        "log_position": log_position,
        "projections": projections,
    }
    return JSONResponse(
        body, status_code=503 if failed else 200, headers={"Retry-After": "5"} if failed else None
    )
