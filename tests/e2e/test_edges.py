"""What the edge refuses before anything is stored, and what it exposes for monitoring."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import Server
from tests.e2e.support import log_position

GOAL_PATH = "/api/v1/goals/agents/edge1"


def test_nan_infinity_and_nul_are_refused_naming_where_and_nothing_is_written(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server()
    headers = {**server.auth_headers(tenant), "content-type": "application/json"}
    before = log_position(server)
    bodies = [
        (b'{"goals": {"purpose_statement": "p", "primary_objectives": ["A"], "kpis": [{"x": NaN}]}}', "body"),
        (b'{"goals": {"purpose_statement": "p", "primary_objectives": ["A"], "kpis": [{"x": -Infinity}]}}', "body"),
        (b'{"goals": {"purpose_statement": "p\\u0000q", "primary_objectives": ["A"]}}', "body.goals.purpose_statement"),
        (b'{"goals": {"purpose_statement": "p", "primary_objectives": ["A"]}, "target_date": "\xff"}', "body"),
    ]
    for body, field in bodies:
        answer = httpx.post(f"{server.url}{GOAL_PATH}", content=body, headers=headers, timeout=30)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["errors"][0]["field"] == field
    assert log_position(server) == before
    fine = b'{"goals": {"purpose_statement": "p", "primary_objectives": ["A"], "kpis": [{"name": "x", "target": 1.5}]}}'
    assert (
        httpx.post(f"{server.url}{GOAL_PATH}", content=fine, headers=headers, timeout=30).status_code == 201
    )


def test_metrics_expose_read_model_positions_and_security_counters(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server()
    headers = server.auth_headers(tenant)
    created = httpx.post(
        f"{server.url}{GOAL_PATH}",
        json={"goals": {"purpose_statement": "p", "primary_objectives": ["A"]}},
        headers=headers,
        timeout=30,
    ).json()
    httpx.get(f"{server.url}{GOAL_PATH}", params={"min_position": created["position"]}, headers=headers)
    httpx.get(f"{server.url}/api/v1/goals/", headers={"Authorization": "Bearer nonsense"}, timeout=30)
    metrics = httpx.get(f"{server.url}/metrics/", timeout=30)
    assert metrics.status_code == 200
    text = metrics.text
    assert 'a2a_projection_position{projection="goal_progress"}' in text
    assert 'a2a_security_events_total{kind="token_issued"}' in text
    assert 'a2a_security_events_total{kind="auth_denied"}' in text
