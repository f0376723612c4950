"""One log line per API request: method, route template, status, duration, and (through the
request context) its id, tenant and client. Never the raw path or query, nor any header: a
secret a caller put there stays out of the logs. Written by the request metrics' middleware,
which has measured all of it already."""

from __future__ import annotations

import logging

log = logging.getLogger("a2a_goals.access")
# Polled every few seconds by orchestrators and Prometheus: at debug level only.
PROBES = ("/health/", "/metrics", "/api/v1/goals/health")


def log_request(path: str, method: str, route: str, status: int, seconds: float) -> None:
    level = logging.DEBUG if path.startswith(PROBES) else logging.INFO
    if log.isEnabledFor(level):
        duration_ms = round(seconds * 1000, 3)
        log.log(
            level,
            "%s %s %d %.1f ms",
            method,
            route,
            status,
            duration_ms,
            extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms},
        )
