"""Errors as a curl user sees them: RFC 9457 problem+json with type, title, status, detail,
instance and request_id, and for a 422 every bad field named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server

API = "/api/v1/goals"
MAX_BODY = 2048
GOALS: dict[str, Any] = {
    "goals": {"purpose_statement": "Find vulnerable dependencies", "primary_objectives": ["Alpha", "Beta"]}
}


@pytest.fixture
def api(start_server: Callable[..., Server], tenant: str) -> Iterator[httpx.Client]:
    """A client (with a token of this test's tenant) of a server with a small body limit and a
    short read-your-writes wait."""
    server = start_server(MAX_BODY_BYTES=str(MAX_BODY), MIN_POSITION_TIMEOUT_S="0.2")
    headers = server.auth_headers(tenant)
    with httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=30) as client:
        yield client


def create(api: httpx.Client, agent_id: str) -> dict[str, Any]:
    response = api.post(f"/agents/{agent_id}", json=GOALS)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The problem document of `response`, checked for the members every problem carries."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def read(api: httpx.Client, path: str, position: int) -> httpx.Response:
    """GET `path` once the read model has `position`; this server waits only 0.2 s per request,
    so a busy machine may need a few asks."""
    for _ in range(100):
        response = api.get(path, params={"min_position": position})
        if response.status_code != 504:
            return response
    raise AssertionError(f"{path} never reached position {position}")


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


def test_unknown_agent_is_404_on_every_route(api: httpx.Client) -> None:
    for response in (
        api.get("/agents/ghost"),
        api.get("/agents/ghost/history"),
        api.get("/analytics/ghost"),
        api.put("/agents/ghost/progress", json={"objective_progress": {"alpha": 5}}),
        api.put("/agents/ghost/status", json={"status": "paused"}),
        api.post("/agents/ghost/auto-update", json={"interval_s": 60}),
    ):
        body = problem(response, 404, "not-found")
        assert "ghost" in body["detail"]


def test_422_names_each_bad_field(api: httpx.Client) -> None:
    created = create(api, "a1")

    too_much = problem(
        api.put("/agents/a1/progress", json={"objective_progress": {"alpha": 120}}), 422, "validation"
    )
    assert fields(too_much) == {"body.objective_progress.alpha"}

    two_bad = api.put("/agents/a1/progress", json={"objective_progress": {"alpha": 120, "beta": -5}})
    assert fields(problem(two_bad, 422, "validation")) == {
        "body.objective_progress.alpha",
        "body.objective_progress.beta",
    }

    unknown = problem(
        api.put("/agents/a1/progress", json={"objective_progress": {"zzz": 5}}), 422, "validation"
    )
    assert fields(unknown) == {"body.objective_progress.zzz"}

    empty = {"goals": {"purpose_statement": "p", "primary_objectives": []}}
    assert fields(problem(api.post("/agents/a2", json=empty), 422, "validation")) == {
        "body.goals.primary_objectives"
    }

    disagree = api.put(
        "/agents/a1/progress", json={"objective_progress": {"alpha": 50}, "overall_progress": 10}
    )
    body = problem(disagree, 422, "validation")
    assert fields(body) == {"body.overall_progress"}
    assert "25.0" in body["errors"][0]["message"]  # alpha 50, beta 0: the derived overall is 25

    naive = problem(api.get("/agents/a1", params={"as_of": "2026-01-01T00:00:00"}), 422, "validation")
    assert fields(naive) == {"query.as_of"}

    # nothing of the above was written
    assert api.get("/agents/a2").status_code == 404
    view = read(api, "/agents/a1", created["position"]).json()
    assert view["version"] == created["version"]
    assert view["progress"]["objective_progress"] == {}


def test_stale_if_match_is_412_and_a_fresh_one_succeeds(api: httpx.Client) -> None:
    created = create(api, "a1")
    version = created["version"]
    payload = {"objective_progress": {"alpha": 10}}

    fresh = api.put("/agents/a1/progress", json=payload, headers={"If-Match": f'"{version}"'})
    assert fresh.status_code == 200, fresh.text
    now = fresh.json()["version"]
    assert fresh.headers["etag"] == f'"{now}"'

    stale = api.put("/agents/a1/progress", json=payload, headers={"If-Match": f'"{version}"'})
    body = problem(stale, 412, "precondition-failed")
    assert body["current_version"] == now
    assert stale.headers["etag"] == f'"{now}"'

    again = api.put(
        "/agents/a1/status", json={"status": "paused"}, headers={"If-Match": stale.headers["etag"]}
    )
    assert again.status_code == 200, again.text
    assert again.json()["version"] == now + 1


def test_body_over_the_limit_is_413_with_or_without_content_length(api: httpx.Client) -> None:
    created = create(api, "a1")
    padding = " " * (MAX_BODY + 100)
    oversized = ('{"objective_progress": {"alpha": 10}' + padding + "}").encode()

    declared = api.put("/agents/a1/progress", content=oversized, headers={"content-type": "application/json"})
    problem(declared, 413, "body-too-large")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(oversized), 512):
            yield oversized[start : start + 512]

    chunked = api.put("/agents/a1/progress", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in chunked.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    problem(chunked, 413, "body-too-large")

    # nothing was recorded, and a body under the limit still goes through
    unchanged = read(api, "/agents/a1", created["position"]).json()
    assert unchanged["version"] == created["version"]
    small = api.put("/agents/a1/progress", json={"objective_progress": {"alpha": 10}})
    assert small.status_code == 200, small.text


def test_min_position_beyond_the_end_of_the_log_is_refused_at_once(api: httpx.Client) -> None:
    created = create(api, "a1")
    far = created["position"] + 1_000_000
    body = problem(api.get("/agents/a1", params={"min_position": far}), 422, "validation")
    assert body["errors"][0]["field"] == "query.min_position"
    problem(api.get("/", params={"min_position": far}), 422, "validation")
    reached = read(api, "/agents/a1", created["position"])
    assert reached.status_code == 200, reached.text


def test_auto_update_422s_name_the_mapping_field(start_server: Callable[..., Server], tenant: str) -> None:
    server = start_server(OUTBOUND_ALLOW_NETS="127.0.0.0/8")
    with httpx.Client(base_url=f"{server.url}{API}", headers=server.auth_headers(tenant), timeout=30) as api:
        create(api, "a1")
        url = "http://127.0.0.1:9/metrics"
        cases: list[tuple[dict[str, Any], set[str]]] = [
            ({"alpha": ""}, {"body.kpi_metrics.alpha"}),
            ({"alpha": 5}, {"body.kpi_metrics.alpha"}),
            ({"alpha": {"metric": "m", "labels": []}}, {"body.kpi_metrics.alpha.labels"}),
            ({"alpha": {"metric": "m", "labels": ""}}, {"body.kpi_metrics.alpha.labels"}),
            ({"alpha": {"metric": "m", "labels": False}}, {"body.kpi_metrics.alpha.labels"}),
            ({"alpha": {"metric": "m", "labels": {"code": ""}}}, {"body.kpi_metrics.alpha.labels.code"}),
            (
                {"alpha": {"metric": "m_total", "aggregation": "rate", "window_s": 10}},
                {"body.kpi_metrics.alpha.window_s"},
            ),
        ]
        for kpi_metrics, expected in cases:
            body = {"interval_s": 120, "metrics_url": url, "kpi_metrics": kpi_metrics}
            refused = problem(api.post("/agents/a1/auto-update", json=body), 422, "validation")
            assert fields(refused) == expected, kpi_metrics
        window = {"alpha": {"metric": "m_total", "aggregation": "rate", "window_s": 86_400}}
        refused = problem(
            api.post(
                "/agents/a1/auto-update", json={"interval_s": 5, "metrics_url": url, "kpi_metrics": window}
            ),
            422,
            "validation",
        )
        assert "10..5000 seconds" in refused["errors"][0]["message"]
        fine = {"alpha": {"metric": "m_total", "aggregation": "rate", "window_s": 240}, "beta": "m"}
        answer = api.post(
            "/agents/a1/auto-update", json={"interval_s": 120, "metrics_url": url, "kpi_metrics": fine}
        )
        assert answer.status_code == 200, answer.text
