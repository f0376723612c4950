"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.http import problems
from interfaces.http.middleware import BodyLimitMiddleware, RequestIdMiddleware
from interfaces.http.routes import analytics, goals

DESCRIPTION = """Goals for A2A agents, event-sourced: every goal, progress update, milestone
and status change is an immutable event. Commands answer with the aggregate `version`
and the log `position`; pass `?min_position=` to a query to read your own write.
Errors are RFC 9457 problem+json."""


def create_app(system: System | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the API around a System (built from Settings when not given)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = system is None
        sys = system or build_system(settings)
        app.state.system = sys
        if owned and sys.settings.run_projections:
            sys.runner.catch_up()
            sys.start_projections()
        try:
            yield
        finally:
            if owned:
                sys.close()

    app = FastAPI(title="a2a-goals", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    if system is not None:
        app.state.system = system
    problems.install(app)
    app.include_router(goals.router)
    app.include_router(analytics.router)
    max_body = (system.settings if system else settings or Settings()).max_body_bytes
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body)
    app.add_middleware(RequestIdMiddleware)
    return app
