"""Request metrics: every route counted by its template, so that a thousand agent ids are
still one series per route."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server
from tests.e2e.support import login


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
    brewed = api.request("BREW", "/agents/x")
    assert brewed.status_code in (400, 405, 501), brewed.status_code
    counted = [s for s in series(server, "a2a_registry_requests_total") if "agent" in s["endpoint"]]
    endpoints = {(s["method"], s["endpoint"], s["status_code"]) for s in counted}
    assert ("GET", "/api/v1/goals/agents/{agent_id}", "404") in endpoints
    assert all("agent-" not in s["endpoint"] for s in counted)
    assert len(series(server, "a2a_registry_requests_total")) < 30
    durations = series(server, "a2a_registry_request_duration_seconds_count")
    assert {"method": "GET", "endpoint": "/api/v1/goals/agents/{agent_id}"} in durations
    # A method of the client's invention never makes a series of its own.
    assert all(s["method"] != "BREW" for s in series(server, "a2a_registry_requests_total"))


def test_registry_agents_are_counted_by_state(start_server: Callable[..., Server], tenant: str) -> None:
    server = start_server(PROJECTION_WATCH_S="0.5")
    _, headers = login(server, tenant)
    card = json.loads((Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())
    for agent_id, visibility in (("a", "public"), ("b", "private"), ("c", "private")):
        body = {"agent_id": agent_id, "card": card, "visibility": visibility}
        assert httpx.post(f"{server.url}/api/v1/agents", json=body, headers=headers).status_code == 201
    deadline = time.monotonic() + 20
    counted: dict[str, float] = {}
    while time.monotonic() < deadline and counted != {"public": 1, "private": 2, "deregistered": 0}:
        text = httpx.get(f"{server.url}/metrics/").text
        counted = {
            s.labels["status"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "a2a_registry_agents_total"
        }
        time.sleep(0.2)
    assert counted == {"public": 1, "private": 2, "deregistered": 0}
