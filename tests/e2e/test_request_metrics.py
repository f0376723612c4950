"""Request metrics: every route counted by its template, so that a thousand agent ids are
still one series per route."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server


def series(server: Server, name: str) -> list[dict[str, str]]:
    text = httpx.get(f"{server.url}/metrics/").text
    return [
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def test_requests_are_counted_by_route_template_with_bounded_series(server: Server, api: httpx.Client) -> None:
    for i in range(1000):
        api.get(f"/agents/agent-{i}")
    api.request("BREW", "/agents/x")
    counted = [s for s in series(server, "a2a_registry_requests_total") if "agent" in s["endpoint"]]
    endpoints = {(s["method"], s["endpoint"], s["status_code"]) for s in counted}
    assert ("GET", "/api/v1/goals/agents/{agent_id}", "404") in endpoints
    assert all("agent-" not in s["endpoint"] for s in counted)
    assert len(series(server, "a2a_registry_requests_total")) < 30
    durations = series(server, "a2a_registry_request_duration_seconds_count")
    assert {"method": "GET", "endpoint": "/api/v1/goals/agents/{agent_id}"} in durations
    assert any(s["method"] == "OTHER" for s in series(server, "a2a_registry_requests_total"))
