"""The runner tells the database's errors apart: one that no retry can change (a value over a
limit of the server, a column that does not exist) stops the read model that met it, at its
event, recorded where operators see it, while the others go on; a statement cancelled for
running past the statement limit (in a read model or reading the log) makes the pages smaller
until they fit, with nothing failed and nothing lost. Temporary errors are retried: see
test_projection_outage.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from application.goals import ProgressUpdate
from application.ports import ReadStore, Tx
from infrastructure.connections import ConnectionLimits
from infrastructure.readstore import PostgresReadStore
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.wiring.database import STORE_ERRORS
from projections.event_facts import EventFactsProjection
from projections.failures import ProjectionFailed
from projections.projection import LogPage, Projection, ReadLog
from projections.runner import ProjectionRunner
from tests.conftest import free_port
from tests.integration.support import (
    fresh_read_store,
    fresh_settings,
    meta,
    rows,
    tracking,
    two_objectives,
    wait_until,
)

AGENT = "limited"
STATEMENT_LIMIT_S = 0.5


def _runner(
    read_log: ReadLog, store: ReadStore, projections: Sequence[Projection], page_size: int
) -> ProjectionRunner:
    """A runner told the database's errors apart as the server's is."""
    return ProjectionRunner(
        read_log, store, projections, page_size=page_size, poll_s=0.05, errors=STORE_ERRORS
    )


def _start_at_log_end(system: System, runner: ProjectionRunner, store: ReadStore) -> None:
    runner.setup()
    with store.transaction() as tx:
        tx.execute("UPDATE projection_tracking SET position = ?", (system.goals.log_position(),))


def _write(system: System, tenant: str, updates: int) -> list[int]:
    """Goals, then `updates` progress updates; the log positions of the events written."""
    start = system.goals.log_position()
    system.goals.set_goals(tenant, AGENT, two_objectives(), meta())
    for value in range(updates):
        system.goals.record_progress(tenant, ProgressUpdate(AGENT, {"speed": value % 100}), meta())
    return [p for p, _ in system.goals.read_log(start, 100_000)]


class RefusedForGoodAt:
    """Stores each event's position; on the page holding `position` it also runs a statement
    the database refuses whatever the moment: too large a value on PostgreSQL, a column that
    does not exist on SQLite. (Both are OperationalErrors of their drivers.)"""

    name = "refused_for_good"
    tables = ("refused_for_good",)

    def __init__(self, position: int) -> None:
        self.position = position

    def create_tables(self, tx: Tx) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS refused_for_good (position BIGINT PRIMARY KEY)")

    def apply(self, tx: Tx, events: LogPage) -> None:
        tx.executemany("INSERT INTO refused_for_good (position) VALUES (?)", [(p,) for p, _ in events])
        if any(p == self.position for p, _ in events):
            if tx.dialect == "postgres":
                tx.execute("SELECT repeat('x', 1073741824)")  # ProgramLimitExceeded
            else:
                tx.execute("SELECT no_such_column FROM refused_for_good")


def test_an_error_no_retry_changes_fails_the_read_model_at_its_event_and_the_others_go_on(
    system: System, tmp_path: Path, tenant: str
) -> None:
    with fresh_read_store(system.settings, tmp_path) as store:
        start = system.goals.log_position()
        refused_at = start + 4
        runner = _runner(
            system.goals.read_log, store, [RefusedForGoodAt(refused_at), EventFactsProjection()], 3
        )
        _start_at_log_end(system, runner, store)
        written = _write(system, tenant, 8)
        runner.start()
        try:
            wait_until(
                lambda: tracking(store)["refused_for_good"][1] == "failed", 30, "the failure to be recorded"
            )
            end = system.goals.log_position()
            wait_until(lambda: tracking(store)["event_facts"][0] == end, 30, "the other read model to go on")
            activity = runner.activity()
        finally:
            runner.stop()
        assert (activity.state, activity.error) == ("running", None), "a failed read model, not a pause"
        status = {s.name: s for s in runner.statuses()}["refused_for_good"]
        assert (status.failed_position, status.position) == (refused_at, refused_at - 1)
        assert status.error is not None and status.error.split(":")[0] in {
            "ProgramLimitExceeded",
            "OperationalError",
        }
        stored = [int(r[0]) for r in rows(store, "SELECT position FROM refused_for_good ORDER BY position")]
        assert stored == [p for p in written if p < refused_at]


class RefusedOnce:
    """The log, whose first read meets a database that refuses connections (nothing listens
    where it connects): a temporary error, raised by the driver."""

    def __init__(self, read_log: ReadLog) -> None:
        self.read_log = read_log
        self.refused = False

    def __call__(self, after: int, limit: int) -> LogPage:
        if not self.refused:
            self.refused = True
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", connect_timeout=2)
        return self.read_log(after, limit)


def test_a_restarted_runner_whose_first_read_meets_an_outage_still_tries_the_failed_read_model_again(
    system: System, tmp_path: Path, tenant: str
) -> None:
    with fresh_read_store(system.settings, tmp_path) as store:
        start = system.goals.log_position()
        broken = _runner(
            system.goals.read_log, store, [RefusedForGoodAt(start + 4), EventFactsProjection()], 3
        )
        _start_at_log_end(system, broken, store)
        written = _write(system, tenant, 8)
        with pytest.raises(ProjectionFailed):
            broken.catch_up()
        broken.close()
        assert tracking(store)["refused_for_good"][1] == "failed"

        log = RefusedOnce(system.goals.read_log)  # a fix deployed, started while the database is away
        fixed = _runner(log, store, [RefusedForGoodAt(-1), EventFactsProjection()], 3)
        fixed.start()
        try:
            wait_until(
                lambda: tracking(store)["refused_for_good"][:2] == (written[-1], "live"),
                30,
                "the failed read model to be tried again once the database answers",
            )
        finally:
            fixed.stop()
        assert log.refused


@pytest.fixture
def pg_system(pg_url: str, tmp_path: Path) -> Iterator[System]:
    settings = Settings(  # type: ignore[call-arg]
        APP_ENV="test",
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=pg_url,
        RUN_PROJECTIONS_IN_PROCESS="false",
    )
    system = build_system(settings)
    try:
        yield system
    finally:
        system.close()


@pytest.fixture
def limited_store(pg_system: System, tmp_path: Path) -> Iterator[ReadStore]:
    """An empty PostgreSQL read store whose statements are cancelled after STATEMENT_LIMIT_S."""
    with fresh_settings(pg_system.settings, tmp_path) as fresh:
        store = PostgresReadStore(
            fresh.database_url, pool_size=4, limits=ConnectionLimits(statement_timeout_s=STATEMENT_LIMIT_S)
        )
        store.limit_statements()
        try:
            yield store
        finally:
            store.close()


class SlowPerEvent:
    """Stores each event's position, in one statement that takes `per_event_s` for each event
    of the page: a page of more than STATEMENT_LIMIT_S / per_event_s events is cancelled."""

    name = "slow_per_event"
    tables = ("slow_per_event",)

    def __init__(self, per_event_s: float) -> None:
        self.per_event_s = per_event_s
        self.pages: list[int] = []  # the events of each page it was given

    def create_tables(self, tx: Tx) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS slow_per_event (position BIGINT PRIMARY KEY)")

    def apply(self, tx: Tx, events: LogPage) -> None:
        self.pages.append(len(events))
        tx.execute(
            "INSERT INTO slow_per_event (position) SELECT p FROM unnest(?::bigint[]) AS p, pg_sleep(?)",
            ([p for p, _ in events], self.per_event_s * len(events)),
        )


@pytest.mark.postgres
def test_a_page_whose_statement_runs_past_the_limit_is_halved_until_it_fits(
    pg_system: System, limited_store: ReadStore, tenant: str
) -> None:
    system = pg_system
    slow = SlowPerEvent(per_event_s=0.02)  # 16 events: 0.32 s; 32: 0.64 s, past the limit
    runner = _runner(system.goals.read_log, limited_store, [slow, EventFactsProjection()], 64)
    _start_at_log_end(system, runner, limited_store)
    written = _write(system, tenant, 100)
    try:
        assert runner.catch_up() == len(written)
    finally:
        runner.close()
    assert {name: (p, state) for name, (p, state, _) in tracking(limited_store).items()} == {
        "slow_per_event": (written[-1], "live"),
        "event_facts": (written[-1], "live"),
    }
    stored = [int(r[0]) for r in rows(limited_store, "SELECT position FROM slow_per_event ORDER BY position")]
    assert stored == written, "each event once"
    assert slow.pages[0] == 64 and max(slow.pages[1:]) <= 32, slow.pages


class SlowLog:
    """The log, read after a statement that takes `per_event_s` for each event asked for, on
    the read store's connections: a read of many events runs past the statement limit."""

    def __init__(self, read_log: ReadLog, store: ReadStore, per_event_s: float) -> None:
        self.read_log, self.store, self.per_event_s = read_log, store, per_event_s
        self.limits: list[int] = []

    def __call__(self, after: int, limit: int) -> LogPage:
        self.limits.append(limit)
        with self.store.read() as tx:
            tx.fetchone("SELECT pg_sleep(?)", (self.per_event_s * limit,))
        return self.read_log(after, limit)


@pytest.mark.postgres
def test_a_log_read_that_runs_past_the_limit_is_made_smaller_until_it_fits(
    pg_system: System, limited_store: ReadStore, tenant: str
) -> None:
    system = pg_system
    log = SlowLog(system.goals.read_log, limited_store, per_event_s=0.02)
    runner = _runner(log, limited_store, [EventFactsProjection()], 64)
    _start_at_log_end(system, runner, limited_store)
    written = _write(system, tenant, 100)
    try:
        assert runner.catch_up() == len(written)
    finally:
        runner.close()
    assert tracking(limited_store)["event_facts"][:2] == (written[-1], "live")
    assert log.limits[0] == 64 and min(log.limits) <= 16, log.limits
