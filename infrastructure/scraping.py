"""Reading an agent's health and metrics endpoints, through the one outbound guard.

A metrics endpoint answers the Prometheus text format (parsed by prometheus-client's own
parser) or, when it says its body is JSON, a JSON document; a health endpoint answers JSON.
Every number of a JSON document becomes a sample named by its dotted path
(`{"queue": {"depth": 3}}` is `queue.depth`), within bounds that keep a small hostile body
small in memory: nothing deeper than MAX_JSON_DEPTH, no path longer than a metric name may be
(MAX_METRIC: no mapping could read it), at most MAX_JSON_SAMPLES samples and MAX_JSON_PATH_CHARS
characters of names in all; what is past a bound is dropped, the rest kept. A body that is not
the format it claims is an `unparsable` failure whose reason is our own text (a line number),
never the body's. A fetch that could not reach the agent, timed
out or answered 5xx is tried again, a bounded number of times, after a backoff that doubles
and is jittered (so agents that fail together are not retried together).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from prometheus_client.parser import text_fd_to_metric_families

from application.collection import ScrapeFailed
from domain.kpi_values import Sample
from domain.limits import MAX_METRIC
from infrastructure.outbound import OutboundClient, OutboundFailed, OutboundResponse

# How an outbound failure is counted by the collector.
STATUSES = {
    "refused": "unreachable",
    "unreachable": "unreachable",
    "timeout": "timeout",
    "status": "status",
    "too_large": "unparsable",
    "unparsable": "unparsable",
}
RETRIED = frozenset({"unreachable", "timeout"})
MAX_JSON_SAMPLES = 10_000
MAX_JSON_DEPTH = 32
MAX_JSON_PATH_CHARS = 1_000_000


class MetricsScraper:
    """Fetches and parses an agent's endpoints (a `Scraper` of the collection service)."""

    def __init__(
        self,
        outbound: OutboundClient,
        *,
        retries: int = 2,
        backoff_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._outbound = outbound
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._jitter = jitter

    def scrape(self, health_url: str | None, metrics_url: str | None) -> list[Sample]:
        """The samples of both endpoints (health first); ScrapeFailed names how it failed."""
        samples: list[Sample] = []
        if health_url:
            response = self._fetch(health_url)
            samples.extend(_json_samples(response))
        if metrics_url:
            response = self._fetch(metrics_url)
            content_type = response.headers.get("content-type", "")
            samples.extend(_json_samples(response) if "json" in content_type else _prometheus_samples(response))
        return samples

    def _fetch(self, url: str) -> OutboundResponse:
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._outbound.get(url, accept="text/plain, application/json;q=0.9, */*;q=0.5")
            except OutboundFailed as failure:
                if last or failure.kind not in RETRIED:
                    raise ScrapeFailed(STATUSES[failure.kind], str(failure)) from None
            else:
                if response.ok:
                    return response
                if last or response.status < 500:
                    raise ScrapeFailed("status", f"{_shown(url)} answered {response.status}")
            self._sleep(self._backoff_s * 2**attempt * (0.5 + self._jitter()))
        raise AssertionError("unreachable: the last attempt returns or raises")


def _shown(url: str) -> str:
    return url.split("?", 1)[0]


class _CountedLines:
    """The lines of a text, counting how many the parser has read (the failing one's number)."""

    def __init__(self, text: str) -> None:
        self.read = 0
        self._lines = iter(text.splitlines(keepends=True))

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.read += 1
            yield line


def _prometheus_samples(response: OutboundResponse) -> list[Sample]:
    try:
        text = response.content.decode("utf-8")
    except UnicodeDecodeError:
        raise ScrapeFailed("unparsable", f"{_shown(response.url)}: not UTF-8 text") from None
    lines = _CountedLines(text)
    try:
        families = text_fd_to_metric_families(lines)  # type: ignore[arg-type]
        return [
            Sample(s.name, float(s.value), dict(s.labels))
            for family in families
            for s in family.samples
            if math.isfinite(s.value)
        ]
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        where = f"line {lines.read}"
        raise ScrapeFailed("unparsable", f"{_shown(response.url)}: not the Prometheus text format ({where})") from None


def _json_samples(response: OutboundResponse) -> list[Sample]:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ScrapeFailed("unparsable", f"{_shown(response.url)}: not JSON ({where})") from None
    return list(_numbers(document))


def _numbers(document: Any) -> Iterator[Sample]:
    """The finite numbers of a JSON document by dotted path, depth first in document order,
    without recursion and within the bounds (MAX_JSON_DEPTH, MAX_METRIC per path,
    MAX_JSON_SAMPLES and MAX_JSON_PATH_CHARS in all)."""
    found = chars = 0
    stack: list[tuple[str, Iterator[tuple[str, Any]]]] = [("", iter([("", document)]))]
    while stack:
        prefix, items = stack[-1]
        step = next(items, None)
        if step is None:
            stack.pop()
            continue
        key, value = step
        if len(key) > MAX_METRIC:
            continue
        path = f"{prefix}.{key}" if prefix else key
        if len(path) > MAX_METRIC:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            if not math.isfinite(value):
                continue
            chars += len(path)
            if found >= MAX_JSON_SAMPLES or chars > MAX_JSON_PATH_CHARS:
                return
            found += 1
            yield Sample(path, float(value))
        elif isinstance(value, dict | list) and len(stack) <= MAX_JSON_DEPTH:
            stack.append((path, _items(value)))


def _items(value: dict[str, Any] | list[Any]) -> Iterator[tuple[str, Any]]:
    pairs: Iterable[tuple[Any, Any]] = value.items() if isinstance(value, dict) else enumerate(value)
    return ((str(k), v) for k, v in pairs)
