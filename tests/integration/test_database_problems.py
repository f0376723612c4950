"""At the HTTP edge, a database that cannot serve now is a 503 with Retry-After, while an error
no retry changes (a value over a server limit, a missing column, a statement over the time
limit) is a 500 whose traceback is logged once: never a 503 that tells the client to send the
same request again and the operator nothing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from infrastructure.breaker import CircuitBreaker
from infrastructure.eventstore import guard_event_store
from infrastructure.readstore import PostgresReadStore
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.http.app import create_app


def _app(system: System, sql: str) -> FastAPI:
    """The API, with a route that runs `sql` on the read store."""
    app = create_app(system)

    @app.get("/statement")
    def statement() -> None:
        with system.store.read() as tx:
            tx.fetchone(sql)

    return app


def _get(app: FastAPI, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers={"X-Request-ID": "req-12345678"})

    return asyncio.run(call())


def _refused_for_good(store_kind: str) -> str:
    return (
        "SELECT repeat('x', 1073741824)"
        if store_kind == "postgres"
        else "SELECT no_such_column FROM sqlite_master"
    )


def test_an_error_no_retry_changes_is_a_500_with_its_traceback_logged_once(
    system: System, store_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        answer = _get(_app(system, _refused_for_good(store_kind)), "/statement")
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "retry-after" not in answer.headers
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1 and "req-12345678" in tracebacks[0].getMessage()


def _pg_system(pg_url: str, tmp_path: Path, **overrides: str) -> System:
    settings = Settings(  # type: ignore[call-arg]
        APP_ENV="test",
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=pg_url,
        RUN_PROJECTIONS_IN_PROCESS="false",
        **overrides,
    )
    return build_system(settings)


@pytest.mark.postgres
def test_a_statement_over_the_time_limit_is_a_500(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    system = _pg_system(pg_url, tmp_path, DB_STATEMENT_TIMEOUT_S="0.2")
    try:
        with caplog.at_level(logging.ERROR):
            answer = _get(_app(system, "SELECT pg_sleep(2)"), "/statement")
    finally:
        system.close()
    assert answer.status_code == 500, answer.text
    assert [r.exc_info[0].__name__ for r in caplog.records if r.exc_info] == ["QueryCanceled"]


@pytest.mark.postgres
def test_a_database_known_to_be_down_is_a_503_with_retry_after(pg_url: str, tmp_path: Path) -> None:
    system = _pg_system(pg_url, tmp_path)
    try:
        breaker = CircuitBreaker("database", lambda: None, failures_to_open=1, probe_in_background=False)
        assert isinstance(system.store, PostgresReadStore)
        system.store.guard(breaker)
        guard_event_store(system.goals, breaker)
        breaker.failed()
        app = _app(system, "SELECT 1")
        answers = {path: _get(app, path) for path in ("/statement", "/api/v1/goals/health")}
    finally:
        system.close()
    for path, answer in answers.items():
        assert answer.status_code == 503, (path, answer.text)
        assert int(answer.headers["retry-after"]) >= 1
