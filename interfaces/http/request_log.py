"""One log line per API request: method, route template, status, duration, and (through the
request context) its id, tenant and client. Never the raw path or query, nor any header: a
secret a caller put there stays out of the logs."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.http.request_metrics import METHODS, UNMATCHED

log = logging.getLogger("a2a_goals.access")
# Polled every few seconds by orchestrators and Prometheus: at debug level only.
PROBES = ("/health/", "/metrics", "/api/v1/goals/health")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            level = logging.DEBUG if scope["path"].startswith(PROBES) else logging.INFO
            if log.isEnabledFor(level):
                method = scope["method"] if scope["method"] in METHODS else "OTHER"
                duration_ms = round((time.perf_counter() - started) * 1000, 3)
                log.log(
                    level,
                    "%s %s %d %.1f ms",
                    method,
                    route,
                    status,
                    duration_ms,
                    extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms},
                )
