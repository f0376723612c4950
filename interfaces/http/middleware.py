"""ASGI middleware: request ids and a body limit enforced while the body is read."""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infrastructure.log_context import request_context

log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}\Z")  # \Z: $ would let a trailing newline in


def adding_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """`send`, with `headers` added to the response's start message."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *headers]
        await send(message)

    return send_with_headers


class RequestIdMiddleware:
    """Takes a well-formed X-Request-ID or makes one; echoes it on the response, and puts it in
    the request's log context (with the caller and route, once known)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        # 32 random hex digits, as uuid4().hex but for the version bits, at a third of its cost.
        request_id = sent if REQUEST_ID.match(sent) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        with request_context(request_id):
            await self.app(scope, receive, adding_headers(send, [(b"x-request-id", request_id.encode())]))


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413, counting what arrives (a lying or absent
    Content-Length does not get past it)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _refuse(
            scope,
            send,
            413,
            "/problems/body-too-large",
            "Request body is too large",
            f"the body exceeds {self.max_bytes} bytes",
        )


class InternalErrorMiddleware:
    """Turns an unhandled exception into a 500 problem, logged once with its request id.

    Starlette's own handler for 500s logs nothing and re-raises, so that the server logs the
    traceback (without the request id); a handler of ours logging too made every 500 two
    tracebacks. Here the exception stops: one line and one traceback per failure."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception:
            request_id = scope.get("state", {}).get("request_id")
            log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id)
            if not started:
                await _refuse(scope, send, 500, "/problems/internal", "Internal error", "an internal error occurred")


async def _refuse(scope: Scope, send: Send, status: int, problem_type: str, title: str, detail: str) -> None:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
        "request_id": scope.get("state", {}).get("request_id"),
    }
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# The interactive docs load Swagger UI / ReDoc from their CDN; everything else is JSON and
# may load nothing at all.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src https://fonts.gstatic.com; connect-src 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The dashboard runs its own scripts and styles and calls this API; nothing inline, nothing
# from elsewhere, and no form posts anywhere (sign-in is a fetch).
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
DASHBOARD_PATH = "/dashboard"


class SecurityHeadersMiddleware:
    """nosniff, frame deny, referrer policy, a CSP per kind of page, and HSTS over TLS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _csp(scope["path"])
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", csp.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if scope.get("scheme") == "https":
            headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))

        await self.app(scope, receive, adding_headers(send, headers))


def _csp(path: str) -> str:
    if path.startswith(DOCS_PATHS):
        return DOCS_CSP
    if path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/"):
        return DASHBOARD_CSP
    return API_CSP
