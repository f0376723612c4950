"""Reading an agent's health and metrics endpoints, through the one outbound guard.

A metrics endpoint answers the Prometheus text format (parsed by prometheus-client's own
parser) or, when it says its body is JSON, a JSON document; a health endpoint answers JSON.
Every number of a JSON document becomes a sample named by its dotted path
(`{"queue": {"depth": 3}}` is `queue.depth`). A fetch that could not reach the agent, timed
out or answered 5xx is tried again, a bounded number of times, after a backoff that doubles
and is jittered (so agents that fail together are not retried together).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from application.collection import ScrapeFailed
from domain.kpi_values import Sample
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


def _prometheus_samples(response: OutboundResponse) -> list[Sample]:
    try:
        text = response.content.decode("utf-8")
        return [
            Sample(s.name, float(s.value), dict(s.labels))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except (ValueError, UnicodeDecodeError, TypeError, IndexError) as error:
        raise ScrapeFailed("unparsable", f"{_shown(response.url)}: not the Prometheus text format ({error})") from None


def _json_samples(response: OutboundResponse) -> list[Sample]:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError as error:
        raise ScrapeFailed("unparsable", f"{_shown(response.url)}: not JSON ({error})") from None
    found = []
    for path, value in _numbers(document, ""):
        found.append(Sample(path, value))
        if len(found) >= MAX_JSON_SAMPLES:
            break
    return found


def _numbers(value: Any, path: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            yield path, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}.{index}" if path else str(index))
