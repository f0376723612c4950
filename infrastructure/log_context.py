"""What a log line says about the request or job it was written for: request id, tenant,
client and route, added to every record written while it runs.

The context is one mutable object per request, held in a context variable: the parts that
learn the caller (authentication) or the route (routing) fill it in, and every line written
afterwards, in any thread the request's work runs on, carries it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestContext:
    request_id: str
    tenant: str | None = None
    client: str | None = None
    route: str | None = None

    def fields(self) -> dict[str, str]:
        found = {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "client": self.client,
            "route": self.route,
        }
        return {name: value for name, value in found.items() if value}


CURRENT: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)
FIELDS = ("request_id", "tenant", "client", "route")


def current_request_id() -> str | None:
    """The id of the request (or job) this code runs for, if any."""
    context = CURRENT.get()
    return context.request_id if context else None


def bind_caller(tenant: str, client: str) -> None:
    """The authenticated caller of the current request, for its log lines."""
    if (context := CURRENT.get()) is not None:
        context.tenant, context.client = tenant, client


def bind_route(template: str) -> None:
    """The route template the current request matched."""
    if (context := CURRENT.get()) is not None:
        context.route = template


@contextmanager
def request_context(request_id: str) -> Iterator[RequestContext]:
    """Log lines written in the block carry `request_id` (and what is bound to it later)."""
    context = RequestContext(request_id)
    token = CURRENT.set(context)
    try:
        yield context
    finally:
        CURRENT.reset(token)


class RequestContextFilter(logging.Filter):
    """Adds the current request's fields to each record (a field already set is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = CURRENT.get()
        if context is not None:
            for name, value in context.fields().items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True
