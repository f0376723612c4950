"""Rebuilds: shadow tables swapped in atomically, equal to the live models, resumable, and
safe while writes continue, even when a swap moves a read model back under a runner that has
chosen its next page; one rebuild at a time per store, whichever process starts it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from application.goals import ProgressUpdate
from application.ports import ShadowInUse
from infrastructure.readstore import REBUILD_LOCK_KEY
from interfaces.bootstrap import System
from projections.event_facts import EventFactsProjection
from projections.projection import LogPage, ReadLog
from projections.rebuild import Rebuilder
from projections.runner import ProjectionRunner
from tests.integration.support import (
    ProgressWriter,
    fresh_read_store,
    history_rows,
    meta,
    progress_rows,
    rebuilt_rows,
    rows,
    tenant_events,
    tracking,
    two_objectives,
    wait_until,
)

AGENTS = [f"r{i}" for i in range(30)]


def _seed(system: System, tenant: str, batches: int = 20) -> None:
    for agent in AGENTS:
        system.goals.set_goals(tenant, agent, two_objectives(), meta())
    writer = ProgressWriter(system, tenant, AGENTS, seed=11)
    for _ in range(batches):
        writer.write_batch()


def _shadow_exists(system: System, tmp_path: Path) -> bool:
    if system.settings.is_postgres:
        with psycopg.connect(system.settings.database_url) as conn:
            row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'a2a_rebuild'").fetchone()
        return row is not None
    return system.settings.read_models_path.with_name("read_models.rebuild.sqlite").exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_rebuild_all_swaps_in_models_equal_to_the_live_ones(
    system: System, tenant: str, tmp_path: Path, jobs: int
) -> None:
    _seed(system, tenant)
    system.runner.catch_up()
    live_progress, live_history = progress_rows(system.store, tenant), history_rows(system.store, tenant)
    facts = "SELECT position, type, payload FROM event_facts WHERE tenant = ? ORDER BY position"
    live_facts = rows(system.store, facts, (tenant,))

    result = system.rebuilder.rebuild(system.rebuilder.names, jobs=jobs)

    end = system.goals.log_position()
    assert result.position == end
    assert result.events == end
    assert progress_rows(system.store, tenant) == live_progress
    assert history_rows(system.store, tenant) == live_history
    assert rows(system.store, facts, (tenant,)) == live_facts
    # Every rebuilt model is live at the end of the log; those a rebuild leaves alone (the
    # webhook outbox: a replay would send every event again) are live too.
    statuses = {(s.name, s.position, s.state) for s in system.runner.statuses()}
    assert {(name, end, "live") for name in system.rebuilder.names} <= statuses
    assert {state for _, _, state in statuses} == {"live"}
    assert not _shadow_exists(system, tmp_path)


def test_a_rebuild_is_shared_among_processes_on_postgres_only(system: System) -> None:
    names = system.rebuilder.names
    shares = system.rebuilder._groups(names, 2)
    if system.settings.is_postgres:
        assert len(shares) == 2 and sorted(n for share in shares for n in share) == sorted(names)
        # the two costliest read models replay in different processes
        assert not any({"goal_progress", "event_facts"} <= set(share) for share in shares)
    else:  # one SQLite file takes one writer at a time: nothing to share
        assert shares == [names]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_rebuild_while_writes_continue_loses_and_doubles_nothing(
    system: System, tenant: str, tmp_path: Path, jobs: int
) -> None:
    _seed(system, tenant, batches=5)
    system.runner.catch_up()
    system.start_projections()
    writer = ProgressWriter(system, tenant, AGENTS, seed=12, pause_s=0.005)
    writer.start()
    try:
        wait_until(lambda: writer.batches >= 5, 30, "writes to start")
        system.rebuilder.rebuild(["goal_progress", "event_facts"], jobs=jobs)
        wait_until(lambda: writer.batches >= 10, 30, "writes after the swap")
    finally:
        writer.halt.set()
        writer.join(10)
    assert writer.error is None
    end = system.goals.log_position()
    wait_until(lambda: min(s.position for s in system.runner.statuses()) >= end, 30, "the live runner")

    positions = [p for p, e in tenant_events(system, tenant, 0) if type(e).__name__ != "Registered"]
    assert [r[0] for r in history_rows(system.store, tenant)] == positions  # none lost, none twice
    fresh_progress, fresh_history = rebuilt_rows(system, tenant, tmp_path)
    assert progress_rows(system.store, tenant) == fresh_progress
    assert history_rows(system.store, tenant) == fresh_history


class Interrupt(Exception):
    pass


def test_an_interrupted_rebuild_resumes_where_it_stopped(system: System, tenant: str) -> None:
    _seed(system, tenant)
    system.runner.catch_up()
    live_history = history_rows(system.store, tenant)
    small = Rebuilder(
        system.goals.read_log,
        system.goals.log_position,
        system.store,
        system.runner.projections,
        page_size=50,
    )
    pages = 0

    def stop_after_three(_at: int, _end: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        small.rebuild(["event_facts"], progress=stop_after_three)
    # the live model is untouched and still live
    assert history_rows(system.store, tenant) == live_history
    assert {s.name: s.state for s in system.runner.statuses()}["event_facts"] == "live"

    resumed = small.rebuild(["event_facts"])
    end = system.goals.log_position()
    # Three pages of 50 events were already in the shadow. Positions are log positions, and
    # the log may have gaps (ids taken by transactions that rolled back, e.g. on a conflict).
    third_page_end = system.goals.read_log(0, 150)[-1][0]
    assert resumed.events == end - third_page_end
    assert history_rows(system.store, tenant) == live_history

    again = small.rebuild(["event_facts"], restart=True)
    assert again.events == end


def test_a_second_rebuild_while_one_runs_is_refused_and_the_first_completes(
    system: System, tenant: str
) -> None:
    _seed(system, tenant)
    system.runner.catch_up()
    live = history_rows(system.store, tenant), progress_rows(system.store, tenant)

    def rebuilder() -> Rebuilder:  # each its own, as in another process (the CLI, another replica)
        return Rebuilder(
            system.goals.read_log,
            system.goals.log_position,
            system.store,
            system.runner.projections,
            page_size=50,
        )

    second: list[BaseException | None] = []

    def start_another(_at: int, _end: int) -> None:
        if not second:
            try:
                rebuilder().rebuild(["event_facts", "goal_progress"])
                second.append(None)
            except ShadowInUse as refused:
                second.append(refused)

    first = rebuilder().rebuild(["event_facts"], progress=start_another)

    assert len(second) == 1 and isinstance(second[0], ShadowInUse)
    assert first.position == system.goals.log_position()
    assert (history_rows(system.store, tenant), progress_rows(system.store, tenant)) == live
    assert {s.state for s in system.runner.statuses()} == {"live"}
    rebuilder().rebuild(["goal_progress"])  # once it is over, the next one runs
    assert progress_rows(system.store, tenant) == live[1]


def test_unknown_projection_names_are_refused(system: System) -> None:
    with pytest.raises(KeyError):
        system.rebuilder.rebuild(["nope"])
    with pytest.raises(KeyError):
        system.rebuilder.rebuild([])


class SwapsBeforeItsFirstRead:
    """A runner's log that calls `swap` once, as the runner reads its first page: after the
    runner chose where the page starts, before it takes the tracking lock to apply it."""

    def __init__(self, read_log: ReadLog, swap: Callable[[], object]) -> None:
        self.read_log, self.swap = read_log, swap
        self.swapped = False

    def __call__(self, after: int, limit: int) -> LogPage:
        if not self.swapped:
            self.swapped = True
            self.swap()
        return self.read_log(after, limit)


def test_a_swap_that_moves_a_read_model_back_under_a_chosen_page_loses_no_event(
    system: System, tenant: str, tmp_path: Path
) -> None:
    def progress(values: range) -> None:
        for value in values:
            system.goals.record_progress(tenant, ProgressUpdate("swapped", {"speed": value}), meta())

    system.goals.set_goals(tenant, "swapped", two_objectives(), meta())
    rebuilt_to = system.goals.log_position()
    progress(range(1, 5))  # what the live model has and the rebuilt one will not
    with fresh_read_store(system.settings, tmp_path) as store:
        live = ProjectionRunner(system.goals.read_log, store, [EventFactsProjection()], page_size=1000)
        live.setup()
        live.catch_up()
        progress(range(5, 8))

        def up_to_rebuilt(after: int, limit: int) -> LogPage:
            return [e for e in system.goals.read_log(after, limit) if e[0] <= rebuilt_to]

        rebuilder = Rebuilder(up_to_rebuilt, lambda: rebuilt_to, store, [EventFactsProjection()])
        log = SwapsBeforeItsFirstRead(system.goals.read_log, lambda: rebuilder.rebuild(["event_facts"]))
        restarted = ProjectionRunner(log, store, [EventFactsProjection()], page_size=1000)
        restarted.catch_up()

        assert log.swapped
        assert tracking(store)["event_facts"][:2] == (system.goals.log_position(), "live")
        facts = "SELECT position FROM event_facts WHERE tenant = ? ORDER BY position"
        assert [r[0] for r in rows(store, facts, (tenant,))] == [
            p for p, _ in tenant_events(system, tenant, 0)
        ]


def _end_the_rebuild_locks_session(url: str) -> None:
    """What an idle-session timeout, an operator or a pooler does to the session that holds
    the rebuild lock (in this test's database only)."""
    with psycopg.connect(url, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s AND objid = %s",
            (REBUILD_LOCK_KEY >> 32, REBUILD_LOCK_KEY & 0xFFFFFFFF),
        ).fetchall()
    assert ended == [(True,)], ended


def test_a_rebuild_that_lost_its_lock_does_not_swap_and_a_later_one_resumes_it(
    system: System, tenant: str
) -> None:
    if not system.settings.is_postgres:
        pytest.skip("SQLite's lock is the rebuild process's own file lock")
    _seed(system, tenant)
    system.runner.catch_up()
    live = history_rows(system.store, tenant), progress_rows(system.store, tenant)
    rebuilder = Rebuilder(
        system.goals.read_log,
        system.goals.log_position,
        system.store,
        system.runner.projections,
        page_size=50,
    )
    ended: list[bool] = []

    def end_it_once(_at: int, _end: int) -> None:
        if not ended:
            _end_the_rebuild_locks_session(system.settings.database_url)
            ended.append(True)

    with pytest.raises(ShadowInUse, match="lost its lock"):
        rebuilder.rebuild(["event_facts", "goal_progress"], progress=end_it_once)

    assert (history_rows(system.store, tenant), progress_rows(system.store, tenant)) == live
    assert {s.state for s in system.runner.statuses()} == {"live"}
    resumed = rebuilder.rebuild(["event_facts", "goal_progress"])
    assert resumed.events == 0, "everything was in the shadow already"
    assert (history_rows(system.store, tenant), progress_rows(system.store, tenant)) == live
