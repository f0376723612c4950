"""The runner tells the database's errors apart: one that no retry can change (a value over a
limit of the server, a column that does not exist) stops the read model that met it, at its
event, recorded where operators see it, while the others go on. Temporary errors are
retried: see test_projection_outage.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from application.goals import ProgressUpdate
from application.ports import ReadStore, Tx
from interfaces.bootstrap import STORE_ERRORS, System
from projections.event_facts import EventFactsProjection
from projections.projection import LogPage, Projection, ReadLog
from projections.runner import ProjectionRunner
from tests.integration.support import (
    fresh_read_store,
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
