"""Operator endpoints for the read side: status, background rebuilds, skips.

Read models are shared by every tenant, so only admins of OPERATOR_TENANT reach these;
to everyone else they do not exist (404).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
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
from projections.rebuild import ClaimedRebuild
from projections.status import projection_status

router = APIRouter(prefix="/api/v1/admin/projections", tags=["operations"], route_class=StrictJSONRoute)
Name = Annotated[str, Path(pattern=r"^[a-z_]{1,64}$")]


@dataclass
class RebuildJob:
    name: str
    state: str = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    events: int | None = None
    events_per_s: float | None = None
    error: str | None = None


class RebuildJobs:
    """Rebuilds started in this process, the latest per read model (or `all`)."""

    def __init__(self) -> None:
        self._jobs: dict[str, RebuildJob] = {}
        self._lock = threading.Lock()

    def start(self, system: System, name: str) -> RebuildJob:
        """Claim the store for a rebuild of `name` and run it in the background; ShadowInUse
        at once while another rebuild, in this process or another, holds the store."""
        names = system.rebuilder.names if name == "all" else [name]
        claimed = system.rebuilder.claim(names)
        job = RebuildJob(name)
        with self._lock:
            self._jobs[name] = job
        try:
            threading.Thread(
                target=self._run, args=(claimed, job), name=f"rebuild-{name}", daemon=True
            ).start()
        except BaseException:
            claimed.release()
            raise
        return job

    def _run(self, claimed: ClaimedRebuild, job: RebuildJob) -> None:
        try:
            result = claimed.run()
            job.events, job.events_per_s, job.state = result.events, round(result.events_per_s), "done"
        except Exception as error:
            job.state, job.error = "failed", f"{type(error).__name__}: {error}"
        job.finished_at = time.time()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(j) for j in self._jobs.values()]


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: int = Field(ge=1, le=MAX_POSITION, description="The log position the read model failed on.")
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), StorableText
    ]


def _operator(system: System, who: Principal) -> None:
    if who.tenant != system.settings.operator_tenant:
        raise HTTPException(404, "Not Found")


def _jobs(request: Request) -> RebuildJobs:
    jobs: RebuildJobs = request.app.state.rebuild_jobs
    return jobs


@router.get("")
def status(request: Request, system: SystemDep, who: AdminCaller) -> dict[str, Any]:
    """Position, lag in events and seconds, and state (live, rebuilding, failed) of each read model."""
    _operator(system, who)
    entries = projection_status(system.runner, system.goals.read_log, system.goals.log_position)
    return {"projections": entries, "rebuilds": _jobs(request).list()}


@router.post("/{name}/rebuild", status_code=202)
def rebuild(name: Name, request: Request, system: SystemDep, who: AdminCaller) -> JSONResponse:
    """Start rebuilding one read model (or `all`) in the background; readers keep the old one
    until the new one is swapped in. 409 while another rebuild runs, in any process."""
    _operator(system, who)
    if name != "all" and name not in system.rebuilder.names:
        raise HTTPException(404, f"no read model {name!r}; known: {', '.join(system.rebuilder.names)}")
    try:
        job = _jobs(request).start(system, name)
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
