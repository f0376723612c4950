"""Log lines as an operator's log pipeline reads them: one JSON object a line with the
request's id, tenant, client, route, status and duration; the request id carried into the
jobs and webhook deliveries a request causes; and no secret a caller sends ever written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx

from tests.conftest import Server
from tests.e2e import test_webhooks
from tests.e2e.support import API, login, ok
from tests.e2e.test_webhooks import FAST, WEBHOOKS, Receiver
from tests.integration.support import wait_until

receiver = test_webhooks.receiver
WAIT_S = 60.0
GOALS = {"goals": {"purpose_statement": "logged", "primary_objectives": ["A"]}}


def _lines(server: Server) -> list[dict[str, Any]]:
    """The server's JSON log lines (what the CLI prints for people, on start, is not one)."""
    found = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def _with_request_id(server: Server, request_id: str) -> list[dict[str, Any]]:
    return [line for line in _lines(server) if line.get("request_id") == request_id]


def test_each_request_is_one_json_line_with_its_caller_route_status_and_duration(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(LOG_FORMAT="json")
    client_id, headers = login(server, tenant)
    request_id = f"req-{uuid.uuid4().hex}"
    answer = httpx.post(
        f"{server.url}{API}/agents/logged-1", json=GOALS, headers={**headers, "X-Request-ID": request_id}
    )
    assert answer.status_code == 201 and answer.headers["x-request-id"] == request_id
    wait_until(lambda: bool(_with_request_id(server, request_id)), WAIT_S, "the request's log line", 0.1)
    (line,) = [entry for entry in _with_request_id(server, request_id) if entry["logger"] == "a2a_goals.access"]
    assert line["level"] == "INFO"
    assert line["route"] == "/api/v1/goals/agents/{agent_id}"  # the template, never the agent's id
    assert line["status"] == 201 and line["method"] == "POST"
    assert line["tenant"] == tenant and line["client"] == client_id
    assert isinstance(line["duration_ms"], float) and line["timestamp"].endswith("+00:00")
    assert "logged-1" not in json.dumps(line)
    # Every line the server wrote once started is a JSON object.
    lines = server.log_text().splitlines()
    started = next(i for i, text in enumerate(lines) if text.startswith("{"))
    assert all(text.startswith("{") for text in lines[started:] if text.strip()), lines[started:]


def test_text_lines_by_default_outside_prod(start_server: Callable[..., Server]) -> None:
    server = start_server()
    ok(httpx.get(f"{server.url}/health/live"))
    assert not _lines(server)


def test_a_job_a_request_sends_logs_under_the_request_id(start_server: Callable[..., Server]) -> None:
    """A rebuild asked for over HTTP runs as a job (in the server's own worker here); its
    'rebuilt' line names the request that asked."""
    server = start_server(LOG_FORMAT="json")
    _, headers = login(server, server.env.get("OPERATOR_TENANT", "default"))
    request_id = f"rebuild-{uuid.uuid4().hex}"
    answer = httpx.post(
        f"{server.url}/api/v1/admin/projections/goal_progress/rebuild",
        headers={**headers, "X-Request-ID": request_id},
    )
    assert answer.status_code == 202, answer.text

    def rebuilt() -> bool:
        return any(line["message"].startswith("rebuilt goal_progress") for line in _with_request_id(server, request_id))

    wait_until(rebuilt, WAIT_S, "the job's line under the request id", 0.1)


def test_a_webhook_delivery_carries_the_request_id_of_the_write(
    start_server: Callable[..., Server], receiver: Receiver, tenant: str
) -> None:
    receiver.fail_first = 0
    server = start_server(**FAST)
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        ok(api.post(WEBHOOKS, json={"url": receiver.url, "events": ["goals_set"]}), 201)
        request_id = f"hook-{uuid.uuid4().hex}"
        ok(api.post(f"{API}/agents/hooked", json=GOALS, headers={"X-Request-ID": request_id}), 201)
    wait_until(lambda: bool(receiver.delivered()), WAIT_S, "the delivery", 0.1)
    assert receiver.delivered()[0].headers["x-request-id"] == request_id


def _has_logged(server: Server, text: str) -> bool:
    return text in server.log_text()


def test_secrets_sent_by_a_caller_never_reach_the_logs(start_server: Callable[..., Server], tenant: str) -> None:
    """A client secret (Basic auth), bearer tokens good and bad, a secret in a query string,
    in a header and in a body: none of them in any line, in either format, at debug level."""
    for log_format in ("json", "text"):
        server = start_server(LOG_FORMAT=log_format, DEBUG="true")
        client_id, secret = server.client(tenant)
        token = ok(
            httpx.post(
                f"{server.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
            )
        )["access_token"]
        planted = f"planted{uuid.uuid4().hex}"
        bearer = {"Authorization": f"Bearer {token}"}
        httpx.get(f"{server.url}{API}/agents/a?api_key={planted}", headers=bearer)
        httpx.get(f"{server.url}{API}/agents/a", headers={**bearer, "X-Api-Key": planted})
        httpx.get(f"{server.url}{API}/agents/a", headers={"Authorization": f"Bearer {planted}.{planted}.x"})
        httpx.post(f"{server.url}{API}/agents/a", json={"goals": {"password": planted}}, headers=bearer)
        httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, planted))
        wait_until(partial(_has_logged, server, "/oauth/token"), WAIT_S, "the requests' lines", 0.1)
        text = server.log_text()
        assert "/api/v1/goals/agents/{agent_id}" in text  # the requests were logged...
        for leaked in (secret, token, planted, token.split(".")[2]):
            assert leaked not in text, log_format  # ...and nothing they carried
