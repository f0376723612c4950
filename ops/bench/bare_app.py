"""The baseline of ops/bench/registry.py: a bare FastAPI app answering the card routes' paths
with fixed bytes, served by uvicorn exactly as `a2a-goals serve` serves the API (one worker,
uvicorn's default loop and HTTP implementation, warning logs, no access log, no proxy headers).

    .venv/bin/python -m ops.bench.bare_app --port P --answer FILE

FILE is JSON: {"body": "<the card, as text>", "headers": {...}}, one card as the real server
served it, with its headers. The routes do no lookup, no authentication and no middleware
runs: what is left is FastAPI's routing and parameter parsing, a hop to the thread pool (the
routes are sync, as the API's are), uvicorn and the socket. A request carrying If-None-Match
is answered 304 with the same headers, whatever its value.

With --middleware, the API's own middleware wraps the routes, in the order create_app adds it
(request ids, security headers, body limit, metrics, internal errors): the difference to the
plain app is what that stack costs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Header, Response

from interfaces.http.middleware import (
    BodyLimitMiddleware,
    InternalErrorMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from interfaces.http.request_metrics import RequestMetricsMiddleware


def create_app(body: bytes, headers: dict[str, str], *, middleware: bool = False) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    if middleware:
        app.add_middleware(InternalErrorMiddleware)
        app.add_middleware(RequestMetricsMiddleware)
        app.add_middleware(BodyLimitMiddleware, max_bytes=1_048_576)
        app.add_middleware(SecurityHeadersMiddleware)
        app.add_middleware(RequestIdMiddleware)

    def answer(if_none_match: str | None) -> Response:
        if if_none_match is not None:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @app.get("/api/v1/agents/{agent_id}/card")
    def card(agent_id: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
        return answer(if_none_match)

    @app.get("/.well-known/agents/{public_id}/agent-card.json")
    def public_card(public_id: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
        return answer(if_none_match)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answer", type=Path, required=True)
    parser.add_argument("--middleware", action="store_true", help="wrap the routes in the API's middleware")
    args = parser.parse_args()
    answer = json.loads(args.answer.read_text())
    app = create_app(answer["body"].encode(), answer["headers"], middleware=args.middleware)
    # The settings of interfaces.cli.main.serve, for one worker.
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, proxy_headers=False
    )


if __name__ == "__main__":
    main()
