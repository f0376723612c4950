"""Value types of request fields: text the system can store, bounded numbers, and instants
written the one way the API documents (RFC 3339)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, WithJsonSchema

from domain.limits import MAX_MAGNITUDE, text_problem

# The largest log position a request may name: positions are BIGINT, but a JSON number past
# 2**53 is no longer an exact integer to most clients (and to JSON Schema tools).
MAX_POSITION = 2**53 - 1
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _storable(value: str) -> str:
    """Text the read models can store: no NUL character, no lone surrogate (length is the
    field's own constraint)."""
    if (problem := text_problem(value, len(value))) is not None:
        raise ValueError(problem)
    return value


def _rfc3339(value: Any) -> Any:
    """Only RFC 3339 text (or an instant given by Python code): not a number of seconds, not a
    date alone, not an instant without its offset."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 instant with an offset, e.g. 2026-11-20T12:00:00Z")
    return value


def _in_range(value: datetime) -> datetime:
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = EARLIEST if value.year < 2 else LATEST
    if not EARLIEST <= moment < LATEST:
        raise ValueError("must be from 1970 to 9998")
    return value


StorableText = AfterValidator(_storable)
Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_in_range),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-11-20T12:00:00Z"}),
]
# A KPI's baseline, target or value (see domain.limits.MAX_MAGNITUDE).
Magnitude = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
