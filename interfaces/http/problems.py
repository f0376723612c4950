"""Every error as RFC 9457 problem+json, mapped in one place."""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from application.clients import ClientNotFound
from application.erasure import ErasureRefused, ErasureUnavailable
from application.errors import ConcurrencyConflict, GoalsNotFound, NotCaughtUp, VersionMismatch
from application.json_encoding import UnstorableValue
from application.ports import JobsUnavailable
from domain.clients import ClientDisabled
from domain.errors import GoalNotActive, InvalidCommand, TransitionRefused
from domain.idempotency import KeyReused
from infrastructure.connections import DatabaseUnavailable
from infrastructure.data_keys import PayloadErased, TenantErasedError
from infrastructure.database_errors import is_temporary
from infrastructure.ratelimit import RateLimiterUnavailable
from interfaces.http.auth import Forbidden, RateLimited, Unauthorized

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
# What a database error arrives as: the drivers' own, or eventsourcing's wrapping them.
# `is_temporary` decides which are a 503.
DATABASE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error, sqlite3.Error, PersistenceError)


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str


VALIDATION = Problem(422, "validation", "Request is not valid")
NOT_FOUND = Problem(404, "not-found", "Not found")
NOT_ACTIVE = Problem(409, "goal-not-active", "Goal is not active")
TRANSITION = Problem(409, "transition-refused", "Status transition refused")
CONFLICT = Problem(409, "concurrency-conflict", "Concurrent changes; try again")
STALE = Problem(412, "precondition-failed", "If-Match does not name the current version")
KEY_REUSED = Problem(422, "idempotency-key-reused", "Idempotency-Key reused with another request")
NOT_CAUGHT_UP = Problem(504, "not-caught-up", "Read model has not reached the position yet")
UNAVAILABLE_PROBLEM = Problem(503, "unavailable", "A dependency is unavailable")
TOO_LARGE = Problem(413, "body-too-large", "Request body is too large")
UNAUTHORIZED = Problem(401, "unauthorized", "Authentication required")
FORBIDDEN = Problem(403, "insufficient-scope", "The token lacks a required scope")
TOO_MANY = Problem(429, "rate-limited", "Too many requests")
TENANT_ERASED = Problem(410, "tenant-erased", "The tenant was erased")
ERASURE_UNAVAILABLE = Problem(409, "erasure-unavailable", "Erasure needs ENCRYPTION=on")
ERASURE_REFUSED = Problem(409, "erasure-refused", "This tenant cannot be erased")
CLIENT_DISABLED = Problem(409, "client-disabled", "The client is disabled")


def problem_response(
    request: Request,
    problem: Problem,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **extra,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=MEDIA_TYPE)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document lists for the path asked for."""
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _template(template).fullmatch(request.url.path):
            return sorted(method.upper() for method in operations)
    return []


@lru_cache(maxsize=256)
def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)))


def _invalid_field(error: Any) -> dict[str, str]:
    if error.get("type") == "json_invalid":  # the body as a whole: not JSON this API takes
        reason = error.get("ctx", {}).get("error", "not valid JSON")
        return {"field": "body", "message": f"invalid JSON: {reason}"}
    return {"field": _field(error["loc"]), "message": error["msg"]}


def _refused(exc: BaseException) -> DatabaseUnavailable | None:
    """The breaker's refusal behind `exc` (the event store wraps it in its own error), if any."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, DatabaseUnavailable):
        cause = cause.__cause__
    return cause


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problems."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_invalid_field(e) for e in exc.errors()]
        fields = ", ".join(e["field"] for e in errors)
        return problem_response(request, VALIDATION, f"invalid fields: {fields}", errors=errors)

    @app.exception_handler(InvalidCommand)
    async def invalid_command(request: Request, exc: InvalidCommand) -> JSONResponse:
        errors = [{"field": f"body.{k}", "message": v} for k, v in exc.errors.items()]
        return problem_response(request, VALIDATION, str(exc), errors=errors)

    @app.exception_handler(TenantErasedError)
    @app.exception_handler(PayloadErased)
    async def erased(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, TENANT_ERASED, str(exc))

    @app.exception_handler(ErasureUnavailable)
    async def erasure_unavailable(request: Request, exc: ErasureUnavailable) -> JSONResponse:
        return problem_response(request, ERASURE_UNAVAILABLE, str(exc))

    @app.exception_handler(ErasureRefused)
    async def erasure_refused(request: Request, exc: ErasureRefused) -> JSONResponse:
        return problem_response(request, ERASURE_REFUSED, str(exc))

    @app.exception_handler(GoalsNotFound)
    async def not_found(request: Request, exc: GoalsNotFound) -> JSONResponse:
        return problem_response(request, NOT_FOUND, str(exc))

    @app.exception_handler(GoalNotActive)
    async def not_active(request: Request, exc: GoalNotActive) -> JSONResponse:
        return problem_response(request, NOT_ACTIVE, str(exc), current_status=exc.status)

    @app.exception_handler(TransitionRefused)
    async def refused(request: Request, exc: TransitionRefused) -> JSONResponse:
        return problem_response(request, TRANSITION, str(exc), current_status=exc.from_status)

    @app.exception_handler(ConcurrencyConflict)
    async def conflict(request: Request, exc: ConcurrencyConflict) -> JSONResponse:
        return problem_response(request, CONFLICT, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(VersionMismatch)
    async def stale(request: Request, exc: VersionMismatch) -> JSONResponse:
        headers = {"ETag": f'"{exc.actual}"'} if exc.actual is not None else None
        return problem_response(request, STALE, str(exc), headers=headers, current_version=exc.actual)

    @app.exception_handler(KeyReused)
    async def key_reused(request: Request, exc: KeyReused) -> JSONResponse:
        return problem_response(request, KEY_REUSED, str(exc))

    @app.exception_handler(NotCaughtUp)
    async def not_caught_up(request: Request, exc: NotCaughtUp) -> JSONResponse:
        return problem_response(
            request, NOT_CAUGHT_UP, str(exc), headers={"Retry-After": "1"}, position=exc.reached
        )

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        refused = _refused(exc)
        if refused is None:
            log.error("dependency unavailable: %s: %s", type(exc).__name__, exc)
            retry_after = 5
        else:  # the breaker logged its opening once; not a line per refused request
            retry_after = max(1, math.ceil(refused.retry_after_s))
        return problem_response(
            request,
            UNAVAILABLE_PROBLEM,
            "a backing service is unavailable; retry shortly",
            headers={"Retry-After": str(retry_after)},
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_temporary(exc):
            # A statement over the time limit, a value too large, a missing column: a retry
            # changes nothing. InternalErrorMiddleware answers 500 and logs the traceback once.
            raise exc
        return await unavailable(request, exc)

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        challenge = 'Bearer realm="a2a-goals"'
        if exc.has_token:
            challenge += f', error="invalid_token", error_description="{exc.reason}"'
        detail = "a valid bearer token is required" if not exc.has_token else f"invalid token: {exc.reason}"
        return problem_response(request, UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge})

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        scope = " ".join(exc.missing)
        challenge = f'Bearer realm="a2a-goals", error="insufficient_scope", scope="{scope}"'
        return problem_response(request, FORBIDDEN, str(exc), headers={"WWW-Authenticate": challenge})

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        d = exc.decision
        retry = max(1, math.ceil(d.retry_after_s))
        headers = {
            "Retry-After": str(retry),
            "RateLimit-Limit": str(d.limit),
            "RateLimit-Remaining": str(d.remaining),
            "RateLimit-Reset": str(max(1, math.ceil(d.reset_s))),
        }
        return problem_response(request, TOO_MANY, str(exc), headers=headers)

    @app.exception_handler(ClientNotFound)
    async def client_not_found(request: Request, exc: ClientNotFound) -> JSONResponse:
        return problem_response(request, NOT_FOUND, str(exc))

    @app.exception_handler(ClientDisabled)
    async def client_disabled(request: Request, exc: ClientDisabled) -> JSONResponse:
        return problem_response(request, CLIENT_DISABLED, str(exc))

    for exc_type in DATABASE_ERRORS:
        app.add_exception_handler(exc_type, database_error)
    # The job broker, or the Redis of job keys, cannot be reached: nothing was queued.
    app.add_exception_handler(JobsUnavailable, unavailable)

    @app.exception_handler(RateLimiterUnavailable)
    async def limiter_unavailable(request: Request, exc: RateLimiterUnavailable) -> JSONResponse:
        # The security log tells the outage, a line a window with its count: not a line here.
        return problem_response(
            request,
            UNAVAILABLE_PROBLEM,
            "a backing service is unavailable; retry shortly",
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))},
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        problem = Problem(exc.status_code, "http-" + str(exc.status_code), str(exc.detail))
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path; a path served
            # by several routes (GET and POST of /clients) allows the methods of them all.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(request, problem, str(exc.detail), headers=headers or None)

    @app.exception_handler(UnstorableValue)
    async def unstorable(request: Request, exc: UnstorableValue) -> JSONResponse:
        # What the field checks did not catch, the shared encoder refused: nothing was stored.
        detail = f"the request holds a value that cannot be stored: {exc}"
        return problem_response(request, VALIDATION, detail, errors=[{"field": "body", "message": str(exc)}])

    # Anything else is a 500 from InternalErrorMiddleware (see interfaces.http.middleware).
