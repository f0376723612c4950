"""Probes for orchestrators and load balancers: liveness and readiness.

Both are public, and answer states only (no positions, counts or errors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.problems import Problem, problem_response
from interfaces.readiness import Readiness

router = APIRouter(prefix="/health", tags=["health"], route_class=StrictJSONRoute)
NOT_READY = Problem(503, "not-ready", "Not ready to serve")
RETRY_AFTER_S = "5"


@router.get("/live")
async def live() -> dict[str, str]:
    """The process answers. Nothing else is asked: a dependency that is away must not get a
    healthy process restarted."""
    return {"status": "alive"}


@router.get("/ready", responses={503: {"description": "A part is not ready; the problem names it"}})
def ready(request: Request) -> Any:
    """Whether this server can serve: PostgreSQL (or SQLite), Redis, the job broker and the
    search backend answer within READY_CHECK_TIMEOUT_S, and no read model failed or is behind
    by more than READY_MAX_LAG_S. A 503 problem names each part that is not, with its state
    (`down`, `timeout`, `behind`, `failed`). With A2A_RPC_URL, `chain` shows whether the chain's
    node answers; it never makes the server not ready (the node holds anchoring back, never a
    request)."""
    readiness: Readiness = request.app.state.readiness
    readings = readiness.read()
    if readings.ready:
        return {"status": "ready", "checks": readings.states}
    named = ", ".join(f"{name} ({readings.states[name]})" for name in readings.not_ready)
    response: JSONResponse = problem_response(
        request,
        NOT_READY,
        f"not ready: {named}",
        headers={"Retry-After": RETRY_AFTER_S},
        checks=readings.states,
    )
    return response
