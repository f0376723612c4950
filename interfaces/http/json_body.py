"""Request bodies parsed as strict JSON, once, before any field is validated.

The standard library's parser takes NaN and Infinity, lone surrogates and integers of any
size, and recurses once per level of nesting (100,000 levels: RecursionError, a 500).
orjson takes exactly RFC 8259 JSON in valid UTF-8, and a body is also refused beyond
MAX_DEPTH levels, far more than any request of this API has; everything else is the typed
schemas' to bound. A refusal is FastAPI's JSON decode error: a 422 naming the body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from infrastructure.log_context import bind_route

MAX_DEPTH = 32
# orjson reads an integer beyond 64 bits as a float, silently changing it: a body with a long
# enough run of digits is read again by the standard library, whose integers are exact, so the
# schemas see (and refuse, naming the field) the number that was sent.
LONG_DIGITS = re.compile(rb"[0-9]{19}")


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            parsed = orjson.loads(body)  # its JSONDecodeError is json's: FastAPI answers 422
            if too_deep(parsed, MAX_DEPTH):
                raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", "", 0)
            if LONG_DIGITS.search(body):
                parsed = json.loads(body)  # valid, and its depth bounded, by now
            self._json = parsed
        return self._json


def too_deep(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[Any] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is parsed by StrictJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        path = self.path

        async def strict(request: Request) -> Response:
            bind_route(path)  # the template, for the request's log lines
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
