"""The FastAPI application."""

from __future__ import annotations

import sys as sys_module
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system, settle_heap
from interfaces.devclient import ensure_dev_client
from interfaces.http import problems, registry_problems
from interfaces.http.card_refresh import CardRefresher
from interfaces.http.middleware import (
    BodyLimitMiddleware,
    InternalErrorMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from interfaces.http.openapi import install_openapi
from interfaces.http.request_metrics import RequestMetricsMiddleware
from interfaces.http.routes import (
    admin,
    analytics,
    audit,
    card_keys,
    dashboard,
    goals,
    health,
    oauth,
    operations,
    peers,
    registry,
    templates,
    webhooks,
    wellknown,
)
from interfaces.metrics import PoolWatch, metrics_app, multiprocess_dir, process_exited
from interfaces.wiring.erasure import reapply_erasures
from interfaces.wiring.readiness import readiness
from interfaces.workers.worker import InProcessJobs

# Every router of the API; their routes parse JSON bodies strictly (StrictJSONRoute).
# Routes are matched in this order, one by one: the hottest reads (cards) first.
ROUTERS = (
    wellknown.router,
    registry.router,
    templates.router,
    goals.router,
    analytics.router,
    card_keys.router,
    peers.router,
    oauth.router,
    admin.router,
    operations.router,
    webhooks.router,
    audit.router,
    health.router,  # probes: seconds apart, last to be matched
)
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
        app.state.readiness = readiness(sys)
        pools = PoolWatch(sys) if multiprocess_dir() else None
        if pools is not None:
            pools.start()
        if owned:
            # Before serving: a restored backup from before an erasure must not serve the tenant.
            reapply_erasures(sys, "start")
            settle_heap()  # a server process of its own: what start-up built stays
        if owned and sys.settings.run_projections:
            # In the background: a long backlog or a failed read model must not keep the API
            # (and its operator endpoints) from starting.
            sys.start_projections()
        if owned:
            sys.warm_analytics()
        # Without BROKER_URL, this process runs the jobs and the scheduler too (`a2a-goals
        # worker` and `scheduler` do with one).
        jobs = InProcessJobs(sys) if owned and sys.jobs.in_process else None
        if jobs is not None:
            jobs.start()
        refresher = CardRefresher(sys)  # this process serves cards: keep its hot ones warm
        refresher.start()
        if owned and (hint := ensure_dev_client(sys)):
            # Straight to the terminal, not through logging: log lines never carry secrets.
            print(hint, file=sys_module.stderr, flush=True)
        try:
            yield
        finally:
            refresher.stop()
            app.state.readiness.close()
            if pools is not None:
                pools.stop()
            if jobs is not None:
                jobs.stop()
            if owned:
                sys.close()
                process_exited()

    config = system.settings if system else settings or Settings()
    app = FastAPI(title=config.app_name, version=config.app_version, description=DESCRIPTION, lifespan=lifespan)
    if system is not None:
        app.state.system = system
    # Counters of requests, writes, security events, read-model positions and failures, for
    # Prometheus: of every server process when several serve.
    app.mount("/metrics", metrics_app(lambda: getattr(app.state, "system", None)))
    problems.install(app)
    registry_problems.install(app)
    webhooks.install_problems(app)
    for router in ROUTERS:
        app.include_router(router)
    dashboard.install(app)
    install_openapi(app)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(RequestMetricsMiddleware, access_log=config.access_log)  # around the 500s too
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origin_list,
            allow_credentials=config.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-ID"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
