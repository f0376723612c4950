"""The one JSON encoder of the system.

The event store writes events with it (application.transcodings) and the read models write
their rows with it (projections/), so whatever the write side manages to store, the read
side can encode again: a value one side refuses, the other refuses too, before anything is
stored. orjson refuses integers beyond 64 bits, strings that are not valid Unicode (lone
surrogates), keys that are not strings and nesting deeper than it can write; PostgreSQL's
jsonb and text refuse the NUL character, so this encoder refuses it too. (orjson writes NaN
and infinities as null: the domain refuses them in every number it takes.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

_ESCAPED_NUL = b"\\u0000"


class UnstorableValue(ValueError):
    """A value the read side could not store (and so the write side must not)."""


def encode_json(
    value: Any, *, default: Callable[[Any], Any] | None = None, option: int = 0, from_log: bool = False
) -> bytes:
    """`value` as compact UTF-8 JSON, or UnstorableValue saying why it cannot be stored.

    `from_log`: the value was read from the log, whose writes went through this encoder and
    its NUL check, so that check (a scan of the whole text) is not made again."""
    try:
        data = orjson.dumps(value, default=default, option=option)
    except orjson.JSONEncodeError as error:
        if error.__cause__ is not None:
            raise error.__cause__ from None  # `default` failed: a type without a transcoding
        raise UnstorableValue(str(error)) from error
    if not from_log and _ESCAPED_NUL in data and _has_nul(data):
        raise UnstorableValue("a string contains the NUL character (U+0000)")
    return data


def _has_nul(data: bytes) -> bool:
    """Whether an escape `\\u0000` in JSON text is a NUL, not a backslash written as `\\\\`
    followed by the text u0000: it is one when an even number of backslashes precede it."""
    start = data.find(_ESCAPED_NUL)
    while start != -1:
        slashes = 0
        while start - slashes - 1 >= 0 and data[start - slashes - 1] == ord("\\"):
            slashes += 1
        if slashes % 2 == 0:
            return True
        start = data.find(_ESCAPED_NUL, start + 1)
    return False

