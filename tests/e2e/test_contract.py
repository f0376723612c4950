"""The HTTP contract at its edges: preconditions as RFC 9110 defines them, instants only as
RFC 3339, numbers the database could not hold refused before they reach it, methods as
the OpenAPI document lists them, and every error documented as the problem it is."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Server
from tests.e2e.support import ok, problem

GOALS = {"goals": {"purpose_statement": "p", "primary_objectives": ["Alpha"]}}


def _create(api: httpx.Client, agent_id: str) -> int:
    version: int = ok(api.post(f"/agents/{agent_id}", json=GOALS), 201)["version"]
    return version


def _progress(api: httpx.Client, agent_id: str, if_match: str, value: float = 10) -> httpx.Response:
    return api.put(
        f"/agents/{agent_id}/progress", json={"objective_progress": {"alpha": value}}, headers={"If-Match": if_match}
    )


def test_if_match_star_lists_and_weak_tags(api: httpx.Client) -> None:
    # * matches any version of a goal that exists, and none of one that does not.
    problem(api.post("/agents/star", json=GOALS, headers={"If-Match": "*"}), 412)
    version = _create(api, "star")
    version = ok(_progress(api, "star", "*"))["version"]
    # A list matches when one of its strong tags is current.
    version = ok(_progress(api, "star", f'"1", "{version}"', 20))["version"]
    # Weak tags never match for If-Match, not even the current version's.
    stale = problem(_progress(api, "star", f'W/"{version}"', 30), 412)
    assert stale["current_version"] == version
    # Not an entity tag at all: a 422 naming the header.
    for malformed in ("", "3a", '"unterminated'):
        refused = problem(_progress(api, "star", malformed), 422)
        assert [e["field"] for e in refused["errors"]] == ["header.if-match"]


# (path, query, the field a 422 names)
UNTAKEABLE = [
    ("/analytics/events", {"to": "0.5"}, "query.to"),
    ("/analytics/events", {"from": "1700000000"}, "query.from"),
    ("/analytics/events", {"from": "2026-11-20T12:00:00"}, "query.from"),  # no offset
    ("/analytics/events", {"from": "2026-11-20"}, "query.from"),
    ("/analytics/events", {"to": "9999-12-31T23:59:59-01:00"}, "query.to"),  # past year 9999 in UTC
    ("/agents/x", {"as_of": "1700000000"}, "query.as_of"),
    ("/", {"offset": "10000000000000000000"}, "query.offset"),
    ("/", {"min_position": "9223372036854775808"}, "query.min_position"),
    ("/agents/x/history", {"cursor": "99999999999999999999"}, "query.cursor"),
    ("/agents/x", {"version": "9223372036854775807"}, "query.version"),
]


def test_instants_and_numbers_the_store_cannot_take_are_422s(api: httpx.Client) -> None:
    for path, params, field in UNTAKEABLE:
        refused = problem(api.get(path, params=params), 422)
        assert field in {e["field"] for e in refused["errors"]}, (path, params, refused)


def test_a_path_with_several_routes_allows_all_their_methods(server: Server, api: httpx.Client) -> None:
    refused = problem(api.request("DELETE", f"{server.url}/api/v1/admin/clients"), 405)
    assert refused["status"] == 405
    answer = api.request("DELETE", f"{server.url}/api/v1/admin/clients")
    assert {m.strip() for m in answer.headers["allow"].split(",")} == {"GET", "POST"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_error_an_operation_answers_is_documented_as_a_problem(server: Server) -> None:
    document = ok(httpx.get(f"{server.url}/openapi.json", timeout=30))
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        if operation.get("security"):
            assert {"401", "403", "429"} <= set(responses), (method, path)
        if "requestBody" in operation:
            assert {"413", "422"} <= set(responses), (method, path)
        for status, response in responses.items():
            if status[0] not in "45" or (path == "/oauth/token" and status in {"400", "401"}):
                continue  # OAuth errors are RFC 6749's JSON
            if path == "/api/v1/goals/health":
                assert list(response["content"]) == ["application/json"]  # the health body, unhealthy
                continue
            assert list(response["content"]) == ["application/problem+json"], (method, path, status)
    commands = [op for path, method, op in _operations(document) if method == "put" and "/agents/" in path]
    assert commands and all({"404", "409", "412"} <= set(op["responses"]) for op in commands)
    assert "HTTPValidationError" not in document["components"]["schemas"]
