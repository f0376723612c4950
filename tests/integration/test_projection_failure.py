"""A projection that raises stops the runner where it is: state 'failed' with the error, the
position before the failing event, nothing at or after it applied, nothing skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from application.goals import ProgressUpdate
from application.ports import ReadStore, Tx
from interfaces.bootstrap import System
from projections.event_facts import EventFactsProjection
from projections.failures import NotSkippable, ProjectionFailed
from projections.goal_progress import GoalProgressProjection
from projections.projection import LogPage
from projections.rebuild import Rebuilder
from projections.runner import ProjectionRunner
from tests.integration.support import fresh_read_store, meta, rows, tracking, two_objectives, wait_until

AGENT = "fragile"


class FailsAt(EventFactsProjection):
    """event_facts, except that it raises on one log position."""

    def __init__(self, position: int | None, calls: list[int] | None = None) -> None:
        super().__init__()
        self.position = position
        self.calls = [] if calls is None else calls  # events per apply(), shared by fresh copies

    def fresh(self) -> FailsAt:
        return FailsAt(self.position, self.calls)

    def apply(self, tx: Tx, events: LogPage) -> None:
        self.calls.append(len(events))
        super().apply(tx, events)  # written, then taken back with the transaction
        if any(p == self.position for p, _ in events):
            raise RuntimeError(f"cannot project event {self.position}")


class FailsOnBigPages(EventFactsProjection):
    """event_facts, except that it raises on a page of more than 3 events."""

    def fresh(self) -> FailsOnBigPages:
        return FailsOnBigPages()

    def apply(self, tx: Tx, events: LogPage) -> None:
        super().apply(tx, events)
        if len(events) > 3:
            raise RuntimeError("page too big")


def _runner(system: System, store: ReadStore, fail_at: int | None) -> ProjectionRunner:
    return ProjectionRunner(
        system.goals.read_log, store, [GoalProgressProjection(), FailsAt(fail_at)], page_size=2, poll_s=0.05
    )


@pytest.fixture
def store(system: System, tmp_path: Path) -> Iterator[ReadStore]:
    """An empty read store whose runners start at the current end of the log."""
    with fresh_read_store(system.settings, tmp_path) as fresh:
        _runner(system, fresh, None).setup()
        with fresh.transaction() as tx:
            tx.execute("UPDATE projection_tracking SET position = ?", (system.goals.log_position(),))
        yield fresh


def _write(system: System, tenant: str) -> list[int]:
    """Goals and five progress updates; the log position each command ended at."""
    results = [system.goals.set_goals(tenant, AGENT, two_objectives(), meta())]
    for value in (10, 20, 30, 40, 60):
        results.append(system.goals.record_progress(tenant, ProgressUpdate(AGENT, {"speed": value}), meta()))
    return [r.position for r in results]


def _history_positions(store: ReadStore, tenant: str) -> list[int]:
    """The positions of the facts that are history entries (all but Registered)."""
    sql = "SELECT position FROM event_facts WHERE tenant = ? AND type <> 'Registered' ORDER BY position"
    found = rows(store, sql, (tenant,))
    return [int(r[0]) for r in found]


def test_failing_projection_stops_without_advancing(system: System, store: ReadStore, tenant: str) -> None:
    positions = _write(system, tenant)
    fail_at = positions[3]  # the third progress update
    runner = _runner(system, store, fail_at)
    runner.start()
    try:
        wait_until(lambda: runner.failure is not None, 30, "the runner to fail")
    finally:
        runner.stop()

    assert isinstance(runner.failure, ProjectionFailed)
    assert isinstance(runner.failure.cause, RuntimeError)
    marks = {s.name: s for s in runner.statuses()}
    # the projection that raised is failed at exactly that event, everything before it applied
    history = marks["event_facts"]
    assert (history.state, history.failed_position) == ("failed", fail_at)
    assert history.error == f"RuntimeError: cannot project event {fail_at}"
    assert history.position == fail_at - 1
    # the others are not held back by it
    end = system.goals.log_position()
    assert (marks["goal_progress"].state, marks["goal_progress"].position) == ("live", end)

    applied = _history_positions(store, tenant)
    system.runner.catch_up()
    everything = system.history.history(tenant, AGENT, after=0, limit=100).items
    assert applied == [e["position"] for e in everything if e["position"] < fail_at]
    progress = rows(store, "SELECT updates FROM goal_progress WHERE tenant = ?", (tenant,))
    assert progress == [(len([e for e in everything if e["action"] == "progress_updated"]),)]

    # left alone, it stays where it is; retried, it fails again on the same event
    assert runner.catch_up() == 0
    runner.retry_failed()
    with pytest.raises(ProjectionFailed, match=str(fail_at)):
        runner.catch_up()
    assert tracking(store)["event_facts"][0] == fail_at - 1


def test_an_operator_skip_passes_exactly_the_failing_event(
    system: System, store: ReadStore, tenant: str
) -> None:
    positions = _write(system, tenant)
    fail_at = positions[3]
    runner = _runner(system, store, fail_at)
    with pytest.raises(ProjectionFailed):
        runner.catch_up()
    with pytest.raises(NotSkippable):
        runner.skip("event_facts", fail_at + 1)
    with pytest.raises(NotSkippable):
        runner.skip("goal_progress", fail_at)

    runner.skip("event_facts", fail_at)
    runner.catch_up()
    system.runner.catch_up()
    everything = [e["position"] for e in system.history.history(tenant, AGENT, after=0, limit=100).items]
    assert _history_positions(store, tenant) == [p for p in everything if p != fail_at]
    assert {s.name: s.state for s in runner.statuses()} == {"goal_progress": "live", "event_facts": "live"}
    sql = "SELECT view FROM goal_progress WHERE tenant = ?"
    assert rows(store, sql, (tenant,)) == rows(system.store, sql, (tenant,)), (
        "other projections kept the event"
    )

    # a rebuild honours the skip instead of failing on the same event again
    rebuilder = Rebuilder(
        system.goals.read_log, system.goals.log_position, store, [GoalProgressProjection(), FailsAt(fail_at)]
    )
    rebuilder.rebuild(["event_facts"])
    assert _history_positions(store, tenant) == [p for p in everything if p != fail_at]


def test_a_skip_made_in_another_process_reaches_a_running_runner(
    system: System, store: ReadStore, tenant: str
) -> None:
    positions = _write(system, tenant)
    fail_at = positions[3]
    runner = _runner(system, store, fail_at)
    with pytest.raises(ProjectionFailed):
        runner.catch_up()

    # the CLI, or another API replica, skips through a runner of its own on the same store
    _runner(system, store, fail_at).skip("event_facts", fail_at)
    runner.catch_up()  # the same runner as before: it learns of the skip from the store

    end = system.goals.log_position()
    assert {s.name: (s.state, s.position) for s in runner.statuses()} == {
        "goal_progress": ("live", end),
        "event_facts": ("live", end),
    }
    system.runner.catch_up()
    everything = [e["position"] for e in system.history.history(tenant, AGENT, after=0, limit=100).items]
    assert _history_positions(store, tenant) == [p for p in everything if p != fail_at]


def test_fixed_projection_resumes_from_where_it_stopped(
    system: System, store: ReadStore, tenant: str
) -> None:
    positions = _write(system, tenant)
    broken = _runner(system, store, positions[3])
    broken.start()
    try:
        wait_until(lambda: broken.failure is not None, 30, "the runner to fail")
    finally:
        broken.stop()

    fixed = _runner(system, store, None)
    fixed.setup()
    fixed.catch_up()
    system.runner.catch_up()

    assert _history_positions(store, tenant) == _history_positions(system.store, tenant)
    columns = "agent_id, status, overall_progress, version, milestones, updates, position, view"
    sql = f"SELECT {columns} FROM goal_progress WHERE tenant = ?"
    assert rows(store, sql, (tenant,)) == rows(system.store, sql, (tenant,))
    # the projector is healthy again: it must not keep reporting the old failure
    assert {s.name: (s.state, s.error) for s in fixed.statuses()} == {
        "goal_progress": ("live", None),
        "event_facts": ("live", None),
    }


def test_a_failure_in_a_large_page_is_found_in_a_few_transactions(
    system: System, store: ReadStore, tenant: str
) -> None:
    results = [system.goals.set_goals(tenant, AGENT, two_objectives(), meta())]
    for value in range(1, 81):
        update = ProgressUpdate(AGENT, {"speed": value, "accuracy": value})
        results.append(system.goals.record_progress(tenant, update, meta()))
    start = tracking(store)["event_facts"][0]
    end = system.goals.log_position()
    fail_at = results[50].position
    calls: list[int] = []
    failing = FailsAt(fail_at, calls)
    runner = ProjectionRunner(
        system.goals.read_log, store, [GoalProgressProjection(), failing], page_size=1000
    )
    with pytest.raises(ProjectionFailed, match=str(fail_at)):
        runner.catch_up()

    marks = {s.name: s for s in runner.statuses()}
    assert (marks["event_facts"].state, marks["event_facts"].failed_position) == ("failed", fail_at)
    assert marks["event_facts"].position == fail_at - 1
    assert (marks["goal_progress"].state, marks["goal_progress"].position) == ("live", end)
    system.runner.catch_up()
    assert _history_positions(store, tenant) == [
        p for p in _history_positions(system.store, tenant) if p < fail_at
    ]
    # the page, then at each halving the half without the failing event as one page and the
    # half with it, down to that event alone: not one transaction per event of the page
    events = end - start
    assert events > 80
    assert len(calls) <= 2 + 2 * events.bit_length(), calls


def test_a_failure_only_big_pages_meet_ends_with_the_page_applied_in_smaller_ones(
    system: System, store: ReadStore, tenant: str
) -> None:
    _write(system, tenant)
    runner = ProjectionRunner(system.goals.read_log, store, [GoalProgressProjection(), FailsOnBigPages()])
    runner.catch_up()

    end = system.goals.log_position()
    assert {s.name: (s.state, s.position) for s in runner.statuses()} == {
        "goal_progress": ("live", end),
        "event_facts": ("live", end),
    }
    system.runner.catch_up()
    assert _history_positions(store, tenant) == _history_positions(system.store, tenant)
