"""The OpenAPI document, completed with every error an operation can answer.

FastAPI documents the responses a route declares, and its 422 as `application/json`. Here
every operation also gets the statuses that follow from what it is (secured: 401, 403, 429;
backed by the database: 503; with a body: 413, 422; with parameters: 422; with
`min_position`: 504; a command: 404, 409, 412), each as `application/problem+json` with the
Problem schema, and the headers those answers carry.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": "A stable identifier of the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "description": "For a 422: every bad field, by path (`body.goals.kpis.0.target`).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 6749 §5.2 error response.",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
DESCRIPTIONS = {
    "400": "Malformed request",
    "401": "No valid bearer token",
    "403": "The token lacks a required scope",
    "404": "Not found",
    "409": "Refused in the current state, or changed concurrently",
    "412": "If-Match names no current version",
    "413": "Request body too large",
    "422": "Invalid fields (each named)",
    "429": "Rate limited",
    "503": "A backing service is unavailable",
    "504": "The read model has not reached min_position yet",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
HEADERS: dict[str, dict[str, Any]] = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "429": {
        **_RETRY_AFTER,
        "RateLimit-Limit": {"schema": {"type": "integer"}},
        "RateLimit-Remaining": {"schema": {"type": "integer"}},
        "RateLimit-Reset": {"schema": {"type": "integer"}},
    },
    "503": _RETRY_AFTER,
    "504": _RETRY_AFTER,
}
COMMANDS = ("post", "put")
HEALTH = "/api/v1/goals/health"


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = complete(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every operation's error responses and the Problem schema."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["OAuthError"] = OAUTH_ERROR_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation) | _errors(responses):
                responses[status] = _problem(status, responses.get(status, {}))
    if path_token := document.get("paths", {}).get("/oauth/token", {}).get("post"):
        _oauth_errors(path_token["responses"])
    if health := document.get("paths", {}).get(HEALTH, {}).get("get"):
        health["responses"]["503"] = {
            "description": "Unhealthy: the database is down, or a read model failed, stopped or does not advance",
            "content": {"application/json": {"schema": {"type": "object"}}},
            "headers": _RETRY_AFTER,
        }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter.get("schema", {}))
    _closed_maps(schemas)
    return document


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter is one that may be left out; it has no null value to send."""
    choices = [c for c in schema.get("anyOf", []) if c != {"type": "null"}]
    if len(choices) != 1 or len(schema["anyOf"]) != 2:
        return schema
    return {**{k: v for k, v in schema.items() if k != "anyOf"}, **choices[0]}


def _closed_maps(node: Any) -> None:
    """A map whose keys must match a pattern (pydantic writes `patternProperties`) admits no
    other key: say so with `additionalProperties: false`, or any key would look valid."""
    if isinstance(node, dict):
        if "patternProperties" in node and "properties" not in node:
            node.setdefault("additionalProperties", False)
        for child in node.values():
            _closed_maps(child)
    elif isinstance(node, list):
        for child in node:
            _closed_maps(child)


def _errors(responses: dict[str, Any]) -> set[str]:
    return {status for status in responses if status[0] in "45"}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    statuses: set[str] = set()
    names = {p["name"] for p in operation.get("parameters", [])}
    if operation.get("security"):
        statuses |= {"401", "403", "429"}
    if path == "/oauth/token":
        statuses.add("429")
    if path.startswith(("/api/v1/", "/oauth/")) and path != HEALTH:
        statuses.add("503")
    if "requestBody" in operation:
        statuses |= {"413", "422"}
    if names:
        statuses.add("422")
    if "min_position" in names:
        statuses.add("504")
    if path.startswith("/api/v1/goals/") and method in COMMANDS:
        statuses.add("409")  # changed concurrently, every retry lost
        if "if-match" in names:
            statuses.add("412")
        if "agent_id" in names:
            statuses.add("404")
    if "{" in path:
        statuses.add("404")
        if path.startswith("/api/v1/admin/") and method == "post":
            statuses.add("409")  # a disabled client; a rebuild already running; nothing to skip
    return statuses


def _problem(status: str, declared: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": declared.get("description") or DESCRIPTIONS.get(status, "Error"),
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _oauth_errors(responses: dict[str, Any]) -> None:
    """The token endpoint answers OAuth errors (RFC 6749) as JSON, not problems."""
    for status, description in (("400", "Invalid request, grant or scope"), ("401", "Invalid client")):
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}},
        }
    responses["401"]["headers"] = HEADERS["401"]
