"""Real errors from real databases, through the read stores and through the log (whose errors
eventsourcing wraps), told apart: a lost session, a breaker's refusal, no connection in time
and a locked file are temporary; a statement over the time limit, a value over a server limit
and a missing column are not."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from infrastructure.breaker import CircuitBreaker
from infrastructure.connections import ConnectionLimits
from infrastructure.database_errors import is_cancelled_statement, is_temporary
from infrastructure.eventstore import guard_event_store
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.conftest import free_port

TOO_LARGE = "SELECT repeat('x', 1073741824)"  # ProgramLimitExceeded, at once


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("nothing was raised")


def _on_the_store(system: System, sql: str) -> Callable[[], object]:
    def run() -> object:
        with system.store.read() as tx:
            return tx.fetchone(sql)

    return run


def _on_the_log(system: System, sql: str) -> Callable[[], object]:
    """`sql` on one of the event store's connections, as eventsourcing hands them out."""

    def run() -> object:
        with system.goals.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            return conn.execute(sql).fetchone()

    return run


@pytest.fixture
def pg_system(pg_url: str, tmp_path: Path) -> Iterator[System]:
    """A PostgreSQL system whose statements are cancelled after 0.2 s."""
    settings = Settings(  # type: ignore[call-arg]
        APP_ENV="test",
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=pg_url,
        RUN_PROJECTIONS_IN_PROCESS="false",
        DB_STATEMENT_TIMEOUT_S="0.2",
    )
    system = build_system(settings)
    try:
        yield system
    finally:
        system.close()


@pytest.mark.postgres
def test_a_statement_over_the_time_limit_is_cancelled_not_temporary(pg_system: System) -> None:
    for call in (
        _on_the_store(pg_system, "SELECT pg_sleep(2)"),
        _on_the_log(pg_system, "SELECT pg_sleep(2)"),
    ):
        error = _raised(call)
        assert is_cancelled_statement(error), repr(error)
        assert not is_temporary(error), repr(error)


@pytest.mark.postgres
def test_a_value_over_a_server_limit_is_not_temporary(pg_system: System) -> None:
    for call in (_on_the_store(pg_system, TOO_LARGE), _on_the_log(pg_system, TOO_LARGE)):
        error = _raised(call)
        assert isinstance(error.__cause__ or error, psycopg.errors.ProgramLimitExceeded), repr(error)
        assert not is_temporary(error) and not is_cancelled_statement(error), repr(error)


@pytest.mark.postgres
def test_a_session_the_server_ended_is_temporary(pg_system: System) -> None:
    def ended_on(run: Callable[[str], Callable[[], object]]) -> BaseException:
        return _raised(run("SELECT pg_terminate_backend(pg_backend_pid())"))

    for error in (
        ended_on(lambda sql: _on_the_store(pg_system, sql)),
        ended_on(lambda sql: _on_the_log(pg_system, sql)),
    ):
        assert is_temporary(error), repr(error)


@pytest.mark.postgres
def test_a_refusal_of_the_breaker_is_temporary_through_the_log_too(pg_system: System) -> None:
    breaker = CircuitBreaker("database", lambda: None, failures_to_open=1, probe_in_background=False)
    guard_event_store(pg_system.goals, breaker)
    pg_system.store.guard(breaker)  # type: ignore[attr-defined]
    breaker.failed()
    for call in (_on_the_store(pg_system, "SELECT 1"), pg_system.goals.log_position):
        error = _raised(call)
        assert is_temporary(error), repr(error)


@pytest.mark.postgres
def test_no_connection_in_time_is_temporary() -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    store = PostgresReadStore(nobody, pool_size=1, limits=ConnectionLimits(pool_timeout_s=0.5))
    try:
        error = _raised(lambda: store.read().__enter__())
    finally:
        store.close()
    assert isinstance(error, psycopg.OperationalError) and is_temporary(error), repr(error)


def test_sqlite_a_locked_file_is_temporary_and_a_missing_column_is_not(tmp_path: Path) -> None:
    path = tmp_path / "read_models.sqlite"
    store = SQLiteReadStore(path)
    try:
        missing = _raised(
            lambda: store.read().__enter__().fetchone("SELECT no_such_column FROM sqlite_master")
        )
        assert isinstance(missing, sqlite3.OperationalError) and not is_temporary(missing)
        with store.transaction() as tx:  # holds the write lock
            tx.execute("CREATE TABLE t (x INTEGER)")
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                locked = _raised(lambda: other.execute("BEGIN IMMEDIATE"))
            finally:
                other.close()
        assert isinstance(locked, sqlite3.OperationalError) and is_temporary(locked), repr(locked)
    finally:
        store.close()
