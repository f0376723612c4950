"""The card route's path, header and query parameters, read from the request in one pass.

The hottest authenticated read: FastAPI's resolution of these parameters (and of the
system dependency) cost ~45 µs of a ~330 µs card GET, measured in process. Each is validated
here exactly as its declaration in CARD_PARAMETERS says (which the OpenAPI document carries),
and a bad one is the same 422 naming it; test_card_parameters_are_validated_as_documented
breaks if the two part ways.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from interfaces.http.schemas import AGENT_ID_PATTERN
from interfaces.http.types import MAX_POSITION

A2A_VERSION = r"^[0-9]+(\.[0-9]+){0,2}$"
_A2A_VERSION = re.compile(A2A_VERSION.removesuffix("$") + r"\Z")
_AGENT_ID = re.compile(AGENT_ID_PATTERN.removesuffix("$") + r"\Z")  # \Z: no trailing newline
AGENT_ID_DESCRIPTION = "The caller's own agent id, or the public id of another tenant's public agent."
MAX_A2A_VERSION = 16
MAX_IF_NONE_MATCH = 1024
_BOOL: TypeAdapter[bool] = TypeAdapter(bool)

CARD_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "agent_id",
        "in": "path",
        "required": True,
        "description": AGENT_ID_DESCRIPTION,
        "schema": {"type": "string", "pattern": AGENT_ID_PATTERN, "description": AGENT_ID_DESCRIPTION, "title": "Agent Id"},
    },
    {
        "name": "A2A-Version",
        "in": "header",
        "required": False,
        "description": "0.3 (or 0.2.x) for the v0.3 form of the card; v1.0 otherwise.",
        "schema": {"type": "string", "maxLength": MAX_A2A_VERSION, "pattern": A2A_VERSION},
    },
    {
        "name": "original",
        "in": "query",
        "required": False,
        "description": "The card exactly as submitted, unsigned by us.",
        "schema": {"type": "boolean", "default": False},
    },
    {
        "name": "if-none-match",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": MAX_IF_NONE_MATCH},
    },
    {
        "name": "min_position",
        "in": "query",
        "required": False,
        "description": "Wait (bounded) until the read model has reached this log position.",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_POSITION},
    },
]


@dataclass(frozen=True)
class CardParams:
    agent_id: str
    a2a_version: str | None
    original: bool
    if_none_match: str | None
    min_position: int | None


def card_params(request: Request) -> CardParams:
    """The parameters of a card GET, or a 422 naming each bad one."""
    headers = request.headers
    errors: list[dict[str, Any]] = []
    agent_id: str = request.path_params["agent_id"]
    if not _AGENT_ID.match(agent_id):
        errors.append(_error("path", "agent_id", f"must match {AGENT_ID_PATTERN}"))
    version = headers.get("a2a-version")
    if version is not None and (len(version) > MAX_A2A_VERSION or not _A2A_VERSION.match(version)):
        errors.append(_error("header", "A2A-Version", f"must match {A2A_VERSION}, at most {MAX_A2A_VERSION} characters"))
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and len(if_none_match) > MAX_IF_NONE_MATCH:
        errors.append(_error("header", "if-none-match", f"at most {MAX_IF_NONE_MATCH} characters"))
    original, min_position = False, None
    if request.scope["query_string"]:
        query = request.query_params
        if (raw := query.get("original")) is not None:
            try:
                original = _BOOL.validate_python(raw)
            except ValidationError:
                errors.append(_error("query", "original", "must be a boolean (true or false)"))
        if (raw := query.get("min_position")) is not None:
            if raw.isascii() and raw.isdigit() and int(raw) <= MAX_POSITION:
                min_position = int(raw)
            else:
                errors.append(_error("query", "min_position", f"must be an integer from 0 to {MAX_POSITION}"))
    if errors:
        raise RequestValidationError(errors)
    return CardParams(agent_id, version, original, if_none_match, min_position)


def _error(where: str, name: str, message: str) -> dict[str, Any]:
    return {"loc": (where, name), "msg": message, "type": "value_error"}
