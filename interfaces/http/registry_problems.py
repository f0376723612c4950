"""The registry's refusals as problems (RFC 9457), beside the goals' in problems.py."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from application.federation import FederationDisabled, PeerNotFound
from application.registry import AgentNotFound, CardUnavailable, SignedCardRequired, TooManyAgents
from domain.registry import AgentAlreadyRegistered, AgentDeregisteredError
from interfaces.http.problems import NOT_FOUND, UNAVAILABLE_PROBLEM, VALIDATION, Problem, problem_response
from projections.agent_cards_queries import MalformedCursor
from projections.search.index import InvalidSearch, SearchUnavailable

ALREADY_REGISTERED = Problem(409, "agent-already-registered", "The agent is already registered")
TOO_MANY_AGENTS = Problem(409, "too-many-agents", "The client has registered as many agents as it may")


def install(app: FastAPI) -> None:
    install_federation(app)
    install_search(app)

    @app.exception_handler(AgentNotFound)
    @app.exception_handler(AgentDeregisteredError)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, NOT_FOUND, str(exc))

    @app.exception_handler(AgentAlreadyRegistered)
    async def already(request: Request, exc: AgentAlreadyRegistered) -> JSONResponse:
        return problem_response(request, ALREADY_REGISTERED, str(exc))

    @app.exception_handler(TooManyAgents)
    async def too_many(request: Request, exc: TooManyAgents) -> JSONResponse:
        return problem_response(request, TOO_MANY_AGENTS, str(exc), limit=exc.limit)

    @app.exception_handler(CardUnavailable)
    async def unavailable_card(request: Request, exc: CardUnavailable) -> JSONResponse:
        errors = [{"field": "body.card_url", "message": f"could not be fetched: {exc.reason}"}]
        return problem_response(request, VALIDATION, str(exc), errors=errors)

    @app.exception_handler(SignedCardRequired)
    async def unsigned(request: Request, exc: SignedCardRequired) -> JSONResponse:
        errors = [{"field": "body.card.signatures", "message": str(exc)}]
        return problem_response(request, VALIDATION, str(exc), errors=errors)

    @app.exception_handler(MalformedCursor)
    async def bad_cursor(request: Request, exc: MalformedCursor) -> JSONResponse:
        errors = [{"field": "query.cursor", "message": "is not a cursor this registry gave out"}]
        return problem_response(request, VALIDATION, "invalid fields: query.cursor", errors=errors)


def install_search(app: FastAPI) -> None:
    @app.exception_handler(InvalidSearch)
    async def invalid_search(request: Request, exc: InvalidSearch) -> JSONResponse:
        errors = [{"field": f"query.{name}", "message": message} for name, message in exc.errors.items()]
        fields = ", ".join(e["field"] for e in errors)
        return problem_response(request, VALIDATION, f"invalid fields: {fields}", errors=errors)

    @app.exception_handler(SearchUnavailable)
    async def search_down(request: Request, exc: SearchUnavailable) -> JSONResponse:
        retry = max(1, math.ceil(exc.retry_after_s))
        return problem_response(
            request, UNAVAILABLE_PROBLEM, str(exc), headers={"Retry-After": str(retry)}, dependency="search"
        )


def install_federation(app: FastAPI) -> None:
    @app.exception_handler(PeerNotFound)
    async def no_peer(request: Request, exc: PeerNotFound) -> JSONResponse:
        return problem_response(request, NOT_FOUND, str(exc))

    @app.exception_handler(FederationDisabled)
    async def disabled(request: Request, exc: FederationDisabled) -> JSONResponse:
        return problem_response(request, NOT_FOUND, str(exc))
