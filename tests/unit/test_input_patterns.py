"""Identifiers taken from outside end where they seem to: with Python's `re`, `$` also matches
before a trailing newline, so `^...$` with `match` let "acme\n" pass for a tenant. Each
pattern checked in Python is anchored at the very end of the text (pydantic's patterns run on
Rust's regex engine, where `$` already is the end)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from domain.clients import OAuthClient
from domain.errors import InvalidCommand
from infrastructure.client_secrets import looks_like_client_id, new_client_id
from interfaces.http.deps import idempotency
from interfaces.http.middleware import RequestIdMiddleware


def http_scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "PUT", "path": "/api/v1/goals/agents/a1", "headers": headers}


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_a_tenant_with_a_trailing_newline_is_refused_by_name() -> None:
    OAuthClient.register(new_client_id(), "acme", "ci", ["goals:read"], "h", "a")
    with pytest.raises(InvalidCommand) as refused:
        OAuthClient.register(new_client_id(), "acme\n", "ci", ["goals:read"], "h", "a")
    assert "tenant" in refused.value.errors


@pytest.mark.parametrize("sent", [b"trace-0000001\n", b"trace-0000001\r\n"])
def test_a_request_id_with_a_trailing_newline_is_replaced(sent: bytes) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["state"]["request_id"])

    async def send(message: Message) -> None:
        pass

    middleware = RequestIdMiddleware(app)
    for header in (b"trace-0000001", sent):
        asyncio.run(middleware(http_scope([(b"x-request-id", header)]), no_body, send))
    kept, replaced = seen
    assert kept == "trace-0000001"
    assert replaced != sent.decode() and "\n" not in replaced


def test_an_idempotency_key_with_a_trailing_newline_is_a_422_naming_the_header() -> None:
    request = Request(http_scope([]), no_body)
    assert asyncio.run(idempotency(request, "set-goals-7")) is not None
    with pytest.raises(RequestValidationError) as refused:
        asyncio.run(idempotency(request, "set-goals-7\n"))
    assert refused.value.errors()[0]["loc"] == ("header", "idempotency-key")


def test_a_client_id_with_a_trailing_newline_is_not_one() -> None:
    client_id = new_client_id()
    assert looks_like_client_id(client_id)
    assert not looks_like_client_id(client_id + "\n")
