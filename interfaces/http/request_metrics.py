"""Every API request counted and timed, labelled by route template (never the raw path, so
the number of series stays bounded whatever ids are sent)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.http.request_log import log_request

REQUESTS = Counter(
    "a2a_registry_requests_total",
    "API requests, by method, route template and status code.",
    ["method", "endpoint", "status_code"],
)
DURATION = Histogram(
    "a2a_registry_request_duration_seconds",
    "Time to answer an API request, by method and route template.",
    ["method", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNMATCHED = "unmatched"  # no route: 404s and 405s of unknown paths are one series
# Methods are the client's to choose: any other is one series too.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
Series = tuple[str, str, int]  # method, endpoint, status


class _Children:
    """The counter's and the histogram's child of each series, looked up once: `labels()`
    costs ~5 µs a request (it builds and locks on every call). As bounded as the series."""

    def __init__(self) -> None:
        self._found: dict[Series, tuple[Counter, Histogram]] = {}

    def __call__(self, series: Series) -> tuple[Counter, Histogram]:
        found = self._found.get(series)
        if found is None:
            method, endpoint, status = series
            found = REQUESTS.labels(method, endpoint, str(status)), DURATION.labels(method, endpoint)
            self._found[series] = found
        return found


class RequestMetricsMiddleware:
    """Counts and times every request, and (`access_log`) writes its access line from the
    same measurement: one wrapper and one clock on every request, not one per concern."""

    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self._children = _Children()
        self._access_log = access_log

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
            # Routing filled in scope["route"] (the same dict) when a route matched.
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            seconds = time.perf_counter() - started
            requests, duration = self._children((method, endpoint, status))
            requests.inc()
            duration.observe(seconds)
            if self._access_log:
                log_request(scope["path"], method, endpoint, status, seconds)
