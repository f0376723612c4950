"""Pipelined pages: while page N's SQL runs on the write-behind thread, the runner folds page
N+1 on top of what N will leave. A read still sees every write queued before it; a page that
fails in the database takes the pages behind it down too, and the runner finds the exact
failing event from what is committed; a page whose COMMIT fails (a connection lost as the
database restarts) ends there, and the runner goes on; a tracking row moved by someone else
while a page is in flight makes the runner drop what it remembers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.goals import ProgressUpdate
from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from interfaces.bootstrap import System
from interfaces.wiring.database import STORE_ERRORS
from projections.clients import ClientsProjection
from projections.event_facts import EventFactsProjection
from projections.failures import ProjectionFailed
from projections.goal_progress import GoalProgressProjection
from projections.projection import LogPage
from projections.runner import ProjectionRunner
from projections.tracking import ProjectionStatus
from projections.write_behind import QueuedTx
from tests.integration.support import fresh_read_store, meta, rows, tracking, two_objectives, wait_until

# the positions of a tenant's history entries: its facts but Registered
ENTRIES = "SELECT position FROM event_facts WHERE tenant = ? AND type <> 'Registered' ORDER BY position"

AGENTS = ["wb-1", "wb-2", "wb-3"]


@pytest.fixture
def store(system: System, tmp_path: Path) -> Iterator[ReadStore]:
    """An empty read store; runners on it start at the current end of the log."""
    with fresh_read_store(system.settings, tmp_path) as fresh:
        yield fresh


def _start_at_log_end(system: System, runner: ProjectionRunner, store: ReadStore) -> None:
    runner.setup()
    with store.transaction() as tx:
        tx.execute("UPDATE projection_tracking SET position = ?", (system.goals.log_position(),))


def _write(system: System, tenant: str, updates: int = 6) -> list[int]:
    """Goals for every agent, then `updates` progress updates each; the positions written."""
    positions = [system.goals.set_goals(tenant, a, two_objectives(), meta()).position for a in AGENTS]
    for step in range(1, updates + 1):
        for agent in AGENTS:
            result = system.goals.record_progress(tenant, ProgressUpdate(agent, {"speed": 5 * step}), meta())
            positions.append(result.position)
    return positions


class RunningCount:
    """Counts events in a one-row table by reading it and writing it back, every page: the
    count is right only if each read sees the writes of the pages before it."""

    name = "running_count"
    tables = ("running_count",)

    def __init__(self) -> None:
        self.pipelined_pages = 0

    def create_tables(self, tx: Tx) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS running_count (id INTEGER PRIMARY KEY, events INTEGER NOT NULL)"
        )
        tx.execute("INSERT INTO running_count (id, events) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")

    def apply(self, tx: Tx, events: LogPage) -> None:
        self.pipelined_pages += isinstance(tx, QueuedTx)
        found = tx.fetchone("SELECT events FROM running_count WHERE id = 1")
        assert found is not None
        tx.execute("UPDATE running_count SET events = ? WHERE id = 1", (int(found[0]) + len(events),))


def test_a_read_in_a_pipelined_page_sees_the_pages_before_it(
    system: System, store: ReadStore, tenant: str
) -> None:
    counter = RunningCount()
    runner = ProjectionRunner(system.goals.read_log, store, [counter, EventFactsProjection()], page_size=2)
    start = system.goals.log_position()
    _start_at_log_end(system, runner, store)
    _write(system, tenant)
    logged = [p for p, _ in system.goals.read_log(start, 10_000)]
    registered = {p for p, e in system.goals.read_log(start, 10_000) if isinstance(e, AgentGoals.Registered)}
    try:
        assert runner.catch_up() == len(logged)
    finally:
        runner.close()
    assert counter.pipelined_pages > 0, "the pages after the first are pipelined"
    assert rows(store, "SELECT events FROM running_count") == [(len(logged),)]
    history = rows(store, ENTRIES, (tenant,))
    assert [int(r[0]) for r in history] == [p for p in logged if p not in registered]


class RefusedInTheDatabase:
    """Stores each event's position in a table whose CHECK refuses one position: the page
    fails on the write-behind thread, not in Python."""

    name = "refusing"
    tables = ("refusing",)

    def __init__(self, refused: int) -> None:
        self.refused = refused

    def create_tables(self, tx: Tx) -> None:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS refusing (position BIGINT PRIMARY KEY CHECK (position <> {self.refused}))"
        )

    def apply(self, tx: Tx, events: LogPage) -> None:
        tx.executemany("INSERT INTO refusing (position) VALUES (?)", [(p,) for p, _ in events])


def test_a_page_refused_by_the_database_fails_exactly_at_its_event(
    system: System, store: ReadStore, tenant: str
) -> None:
    start = system.goals.log_position()
    refused_at = start + 2 * len(AGENTS) + 5  # a page well after the first
    runner = ProjectionRunner(
        system.goals.read_log, store, [RefusedInTheDatabase(refused_at), EventFactsProjection()], page_size=2
    )
    _start_at_log_end(system, runner, store)
    _write(system, tenant)
    written = [p for p, _ in system.goals.read_log(start, 10_000)]
    registered = {p for p, e in system.goals.read_log(start, 10_000) if isinstance(e, AgentGoals.Registered)}
    assert refused_at in written
    try:
        with pytest.raises(ProjectionFailed) as failed:
            runner.catch_up()
    finally:
        runner.close()
    assert failed.value.name == "refusing" and failed.value.position == refused_at
    marks: dict[str, ProjectionStatus] = {s.name: s for s in runner.statuses()}
    assert (marks["refusing"].state, marks["refusing"].failed_position) == ("failed", refused_at)
    assert marks["refusing"].position == refused_at - 1
    stored = [int(r[0]) for r in rows(store, "SELECT position FROM refusing ORDER BY position")]
    assert stored == [p for p in written if p < refused_at], "everything before it, once"
    history = rows(store, ENTRIES, (tenant,))
    assert [int(r[0]) for r in history] == [p for p in written if p not in registered], (
        "the other read model went on to the end"
    )
    assert tracking(store)["event_facts"][0] == system.goals.log_position()


class LosesItsConnectionAtCommit:
    """Stores each event's position. The first time a page holding `position` commits, a
    deferred trigger has PostgreSQL end the connection, as a restart of the server does: the
    page fails at COMMIT, after the runner has handed over its last step."""

    name = "losing"
    tables = ("losing",)

    def __init__(self, position: int) -> None:
        self.position = position

    def create_tables(self, tx: Tx) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS losing (position BIGINT PRIMARY KEY)")
        tx.execute("CREATE SEQUENCE IF NOT EXISTS losing_commits")  # not rolled back: counts attempts
        tx.execute(
            "CREATE OR REPLACE FUNCTION lose_connection() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF NEW.position = {self.position} AND nextval('losing_commits') = 1 THEN"
            " PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NULL; END $$"
        )
        tx.execute("DROP TRIGGER IF EXISTS lose_connection ON losing")
        tx.execute(
            "CREATE CONSTRAINT TRIGGER lose_connection AFTER INSERT ON losing"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lose_connection()"
        )

    def apply(self, tx: Tx, events: LogPage) -> None:
        tx.executemany("INSERT INTO losing (position) VALUES (?)", [(p,) for p, _ in events])


def test_a_page_that_loses_its_connection_at_commit_does_not_stop_the_read_side(
    system: System, store: ReadStore, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    if store.dialect != "postgres":
        pytest.skip("SQLite has no connection to lose; its failed COMMITs: test_read_transactions.py")
    start = system.goals.log_position()
    lost_at = start + 2 * len(AGENTS) + 5  # in a page well after the first: a pipelined one
    runner = ProjectionRunner(
        system.goals.read_log,
        store,
        [LosesItsConnectionAtCommit(lost_at), EventFactsProjection(), ClientsProjection()],
        page_size=2,
        poll_s=0.05,
        errors=STORE_ERRORS,
    )
    _start_at_log_end(system, runner, store)
    _write(system, tenant)
    logged = [p for p, _ in system.goals.read_log(start, 10_000)]
    end = system.goals.log_position()
    assert lost_at in logged
    with caplog.at_level(logging.WARNING, logger="projections.pages"):
        runner.start()
        try:
            wait_until(
                lambda: all(p >= end for p, _, _ in tracking(store).values()),
                60,
                "every read model to reach the end",
            )
        finally:
            runner.stop()
    assert rows(store, "SELECT is_called FROM losing_commits") == [(True,)], "the connection was lost once"
    # the page that lost it was a pipelined one, the only kind whose COMMIT runs on the
    # write-behind thread after the runner has handed over its last step
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("a pipelined page failed")]
    assert len(failed) == 1 and "terminating connection" in failed[0], failed
    stored = [int(r[0]) for r in rows(store, "SELECT position FROM losing ORDER BY position")]
    assert stored == logged, "each event once, the lost page's included"
    assert {name: state for name, (_, state, _) in tracking(store).items()} == {
        "losing": "live",
        "event_facts": "live",
        "oauth_clients": "live",
    }
    assert runner.failure is None


def test_a_tracking_row_moved_between_pages_drops_what_the_runner_remembers(
    system: System, store: ReadStore, tenant: str
) -> None:
    runner = ProjectionRunner(system.goals.read_log, store, [GoalProgressProjection()], page_size=2)
    _start_at_log_end(system, runner, store)
    try:
        _write(system, tenant, 3)
        runner.catch_up()  # remembers the rows, and predicts the tracking row it left
        with store.transaction() as tx:  # as a rebuild's swap would: new rows, tracking moved
            tx.execute(
                "UPDATE goal_progress SET updates = updates + 1000 WHERE tenant = ? AND agent_id = ?",
                (tenant, AGENTS[0]),
            )
            tx.execute("UPDATE projection_tracking SET updated_at = updated_at + 1")
        for step in range(3):
            for agent in AGENTS:
                system.goals.record_progress(tenant, ProgressUpdate(agent, {"speed": 50 + step}), meta())
        runner.catch_up()
    finally:
        runner.close()
    found = dict(rows(store, "SELECT agent_id, updates FROM goal_progress WHERE tenant = ?", (tenant,)))
    # the rewrite is kept and built upon: the runner read the row again instead of its memory
    assert found == {AGENTS[0]: 1006, AGENTS[1]: 6, AGENTS[2]: 6}
