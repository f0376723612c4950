"""The app's edges: an unhandled error is one 500 problem and one logged traceback with its
request id; every route parses JSON strictly."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from infrastructure.settings import Settings
from interfaces.http.app import ROUTERS, create_app
from interfaces.http.json_body import StrictJSONRoute


def test_an_unhandled_error_is_a_500_problem_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings=Settings(APP_ENV="test", DATA_DIR=str(tmp_path)))  # type: ignore[call-arg]

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    async def call() -> httpx.Response:
        # raise_app_exceptions: an exception that left the app is what the server logs again
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom", headers={"X-Request-ID": "req-12345678"})

    with caplog.at_level(logging.ERROR):
        answer = asyncio.run(call())
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["request_id"] == "req-12345678"
    assert "a bug" not in answer.text
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert "req-12345678" in tracebacks[0].getMessage()


def test_every_route_parses_its_body_as_strict_json() -> None:
    """A router added without StrictJSONRoute would take NaN, lone surrogates and any depth."""
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, StrictJSONRoute), (router.prefix, getattr(route, "path", route))
