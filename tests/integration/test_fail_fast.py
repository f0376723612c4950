"""Failing fast on PostgreSQL: a statement that runs past DB_STATEMENT_TIMEOUT_S is cancelled,
a lost connection is a failure the circuit breaker counts, and while the breaker is open both
stores refuse at once; a probe that finds the database lets them work again.

On the shared server, in this session's own database: only its sessions are ended.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from psycopg_pool import PoolTimeout

from infrastructure.breaker import CircuitBreaker
from infrastructure.connections import ConnectionLimits, DatabaseUnavailable, probe
from infrastructure.eventstore import guard_event_store
from infrastructure.readstore import PostgresReadStore
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.conftest import free_port
from tests.integration.support import meta, one_objective

pytestmark = pytest.mark.postgres

PROBE_EVERY_S = 2.0


@pytest.fixture
def system(pg_url: str, tmp_path: Path) -> Iterator[System]:
    settings = Settings(
        APP_ENV="test",
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=pg_url,
        RUN_PROJECTIONS_IN_PROCESS="false",
        DB_STATEMENT_TIMEOUT_S="0.5",
        DB_BREAKER_FAILURES="1",
        DB_PROBE_INTERVAL_S=str(PROBE_EVERY_S),
    )  # type: ignore[call-arg]
    built = build_system(settings)
    yield built
    built.close()


def _in_thread(work: threading.Thread, bound_s: float) -> None:
    work.start()
    work.join(bound_s)
    assert not work.is_alive(), f"still waiting after {bound_s}s"


def test_a_query_running_past_the_statement_timeout_is_cancelled(system: System) -> None:
    errors: list[BaseException] = []

    def query() -> None:
        try:
            with system.store.read() as tx:
                tx.fetchone("SELECT pg_sleep(5)")
        except BaseException as error:
            errors.append(error)

    _in_thread(threading.Thread(target=query), 30)
    assert [type(e) for e in errors] == [psycopg.errors.QueryCanceled]
    assert system.database is not None and system.database.state == "closed"  # the database answered


def test_a_command_waiting_on_the_log_lock_is_cancelled_instead_of_waiting_for_ever(
    system: System, pg_url: str, tenant: str
) -> None:
    table = system.goals.recorder.events_table_name  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def command() -> None:
        try:
            system.goals.set_goals(tenant, "a1", one_objective(), meta())
        except BaseException as error:
            errors.append(error)

    with psycopg.connect(pg_url) as holder:
        holder.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')  # as a stuck writer would
        _in_thread(threading.Thread(target=command), 30)
    assert [type(e) for e in errors] == [StoreOperationalError]
    assert isinstance(errors[0].__cause__, psycopg.errors.QueryCanceled)
    assert system.database is not None and system.database.state == "closed"
    assert system.goals.set_goals(tenant, "a1", one_objective(), meta()).items[0].created


def _end_sessions(pg_url: str) -> None:
    """End every other session on this session's database (this system's connections)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def _reads(system: System) -> bool:
    try:
        with system.store.read() as tx:
            tx.fetchone("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _guarded_by_hand(system: System, pg_url: str, clock: Clock) -> CircuitBreaker:
    """Both stores guarded by a breaker that probes only when the test says so, on a clock of
    the test's: what it refuses, and when it lets requests through again, cannot depend on
    how fast the machine is."""
    breaker = CircuitBreaker(
        "database",
        partial(probe, pg_url),
        failures_to_open=1,
        probe_every_s=PROBE_EVERY_S,
        probe_in_background=False,
        clock=clock,
    )
    assert isinstance(system.store, PostgresReadStore)
    system.store.guard(breaker)
    guard_event_store(system.goals, breaker)
    return breaker


def test_lost_connections_open_the_breaker_then_both_stores_refuse_at_once_until_a_probe_answers(
    system: System, pg_url: str, tenant: str
) -> None:
    clock = Clock()
    breaker = _guarded_by_hand(system, pg_url, clock)
    system.goals.set_goals(tenant, "a1", one_objective(), meta())
    _end_sessions(pg_url)

    with pytest.raises(psycopg.OperationalError) as lost, system.store.read() as tx:
        tx.fetchone("SELECT 1")
    assert not isinstance(lost.value, DatabaseUnavailable)  # this one found it out
    assert breaker.state == "open"

    clock.now += 0.5
    with pytest.raises(DatabaseUnavailable) as refused, system.store.read() as tx:
        tx.fetchone("SELECT 1")
    assert refused.value.retry_after_s == pytest.approx(PROBE_EVERY_S - 0.5)
    with pytest.raises(StoreOperationalError) as write:
        system.goals.set_goals(tenant, "a2", one_objective(), meta())
    assert isinstance(write.value.__cause__, DatabaseUnavailable)
    with pytest.raises(StoreOperationalError) as position:
        system.goals.log_position()
    assert isinstance(position.value.__cause__, DatabaseUnavailable)

    assert breaker.probe(), "the database answers the probe"
    assert breaker.state == "half-open"
    assert _reads(system)
    assert breaker.state == "closed"
    # the stale connections were replaced: what follows works at the first attempt
    assert all(_reads(system) for _ in range(5))
    assert system.goals.set_goals(tenant, "a2", one_objective(), meta()).items[0].created
    assert system.goals.log_position() > 0


class CountingBreaker(CircuitBreaker):
    """Counts the calls it is asked to admit."""

    admitted = 0

    def admit(self) -> None:
        self.admitted += 1
        super().admit()


def test_while_the_database_is_down_each_event_store_call_is_one_attempt(system: System, tenant: str) -> None:
    written = system.goals.set_goals(tenant, "a1", one_objective(), meta()).items[0]
    breaker = CountingBreaker("database", lambda: None, failures_to_open=1, probe_in_background=False)
    guard_event_store(system.goals, breaker)
    breaker.failed()
    calls = [
        system.goals.log_position,
        lambda: system.goals.recorder.select_events(written.aggregate_id),
        lambda: system.goals.recorder.select_notifications(start=0, limit=10),
        lambda: system.goals.snapshots.recorder.select_events(written.aggregate_id),  # type: ignore[union-attr]
        lambda: system.goals.read_log(0, 10),
        lambda: system.goals.set_goals(tenant, "a2", one_objective(), meta()),
    ]
    for call in calls:
        before = breaker.admitted
        with pytest.raises(StoreOperationalError):
            call()
        assert breaker.admitted == before + 1  # refused once, not tried again and again


def _small_pool_system(url: str, tmp_path: Path) -> System:
    """Two read-store connections at most, a short wait for one, and a breaker that opens at
    the first failure."""
    settings = Settings(  # type: ignore[call-arg]
        APP_ENV="test",
        DATA_DIR=str(tmp_path / "small"),
        DATABASE_URL=url,
        RUN_PROJECTIONS_IN_PROCESS="false",
        DB_POOL_SIZE="2",
        DB_POOL_TIMEOUT_S="0.2",
        DB_BREAKER_FAILURES="1",
    )
    return build_system(settings)


def test_a_pool_busy_with_slow_queries_is_not_taken_for_a_database_that_is_down(
    pg_url: str, tmp_path: Path
) -> None:
    system = _small_pool_system(pg_url, tmp_path)
    try:
        with ExitStack() as slow_queries:  # every connection held, as long analytics would
            for _ in range(2):
                slow_queries.enter_context(system.store.read())
            for _ in range(3):
                with pytest.raises(PoolTimeout), system.store.read() as tx:  # a 503 for this request
                    tx.fetchone("SELECT 1")
            assert system.database is not None and system.database.state == "closed"
        assert _reads(system)
    finally:
        system.close()


def test_no_connection_in_time_from_a_pool_with_none_is_a_database_that_is_down(tmp_path: Path) -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    store = PostgresReadStore(nobody, pool_size=2, limits=ConnectionLimits(pool_timeout_s=0.2))
    breaker = CircuitBreaker("database", lambda: None, failures_to_open=1, probe_in_background=False)
    store.guard(breaker)
    try:
        with pytest.raises(PoolTimeout), store.read():
            pass
        assert breaker.state == "open"
    finally:
        store.close()
