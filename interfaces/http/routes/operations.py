"""Operator endpoints for the read side: status, rebuilds (run as jobs), skips.

Read models are shared by every tenant, so only admins of OPERATOR_TENANT reach these;
to everyone else they do not exist (404).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from application.operations import record_skip
from application.ports import ShadowInUse
from interfaces.bootstrap import System
from interfaces.http.auth import AdminCaller, Principal
from interfaces.http.deps import SystemDep
from interfaces.http.json_body import StrictJSONRoute
from interfaces.http.types import MAX_POSITION, StorableText
from projections.failures import NotSkippable
from projections.status import projection_status

router = APIRouter(prefix="/api/v1/admin/projections", tags=["operations"], route_class=StrictJSONRoute)
Name = Annotated[str, Path(pattern=r"^[a-z_]{1,64}$")]


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: int = Field(ge=1, le=MAX_POSITION, description="The log position the read model failed on.")
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), StorableText
    ]


def _operator(system: System, who: Principal) -> None:
    if who.tenant != system.settings.operator_tenant:
        raise HTTPException(404, "Not Found")


@router.get("")
def status(system: SystemDep, who: AdminCaller) -> dict[str, Any]:
    """Position, lag in events and seconds, and state (live, rebuilding, failed) of each read
    model, and the latest rebuild of each asked for here (queued, running, done, failed)."""
    _operator(system, who)
    entries = projection_status(system.runner, system.goals.read_log, system.goals.log_position)
    return {"projections": entries, "rebuilds": system.rebuilds.latest()}


@router.post("/{name}/rebuild", status_code=202)
def rebuild(name: Name, system: SystemDep, who: AdminCaller) -> JSONResponse:
    """Queue a rebuild of one read model (or `all`), run by a job worker; readers keep the old
    one until the new one is swapped in. 409 while another rebuild runs (in any process) or is
    queued."""
    _operator(system, who)
    if name != "all" and name not in system.rebuilder.names:
        raise HTTPException(404, f"no read model {name!r}; known: {', '.join(system.rebuilder.names)}")
    try:
        job = system.rebuilds.start(name)
    except ShadowInUse as running:  # in this process or another
        raise HTTPException(409, str(running)) from None
    return JSONResponse(asdict(job), status_code=202, headers={"Location": "/api/v1/admin/projections"})


@router.post("/{name}/skip")
def skip(name: Name, body: SkipIn, system: SystemDep, who: AdminCaller) -> dict[str, Any]:
    """Let a failed read model pass over the one event it failed on; recorded in the log first."""
    _operator(system, who)
    try:
        system.runner.skip_check(name, body.position)
    except NotSkippable as e:
        raise HTTPException(409, str(e)) from None
    recorded = record_skip(system.goals, name, body.position, body.reason, who.actor)
    system.runner.skip(name, body.position)
    if system.settings.run_projections:
        system.runner.resume()
    return {"name": name, "skipped": body.position, "recorded_at": recorded}
