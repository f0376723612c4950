"""What query routes share: their common parameters, read-your-writes, and refusals of a
query parameter that no schema could state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from fastapi.exceptions import RequestValidationError

from interfaces.bootstrap import System
from interfaces.http.schemas import AGENT_ID_PATTERN
from interfaces.http.types import MAX_POSITION
from projections.freshness import wait_for_position

AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN, description="The agent's id in its tenant.")]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0, le=MAX_POSITION, description="Wait (bounded) until the read model has reached this log position."
    ),
]


def read_your_writes(system: System, names: list[str], min_position: int | None) -> None:
    """Return once the named read models have reached `min_position` (504 after a bounded
    wait); a position past the end of the log was never written, and is refused at once."""
    if not min_position:
        return
    if min_position > system.goals.log_position():
        raise invalid_query("min_position", "is beyond the end of the log")
    wait_for_position(system.store, names, min_position, system.settings.min_position_timeout_s)


def invalid_query(name: str, message: str) -> RequestValidationError:
    """A 422 naming the query parameter `name`."""
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])
