"""Several processes on one store, as in docker-compose (API replicas x workers + projectors):
they can all start at once on an empty store, and several projection runners together still
apply every event exactly once (extra runners are hot standbys)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from domain.goals import AgentGoals
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.integration.support import (
    ProgressWriter,
    fresh_settings,
    history_rows,
    meta,
    one_objective,
    progress_rows,
    rebuilt_rows,
    tenant_events,
    tracking,
    two_objectives,
    wait_until,
)

STARTERS = 6
AGENTS = [f"r{i:02d}" for i in range(30)]


def test_systems_starting_together_on_an_empty_store(
    make_settings: Callable[..., Settings], tmp_path: Path, tenant: str
) -> None:
    with fresh_settings(make_settings(RUN_PROJECTIONS_IN_PROCESS="false"), tmp_path) as settings:
        barrier = threading.Barrier(STARTERS)

        def start(_: int) -> System | Exception:
            barrier.wait()
            try:
                return build_system(settings)
            except Exception as error:
                return error

        with ThreadPoolExecutor(max_workers=STARTERS) as pool:
            started = list(pool.map(start, range(STARTERS)))
        for s in started:
            if isinstance(s, System):
                s.close()
        failures = [repr(s) for s in started if isinstance(s, Exception)]
        assert failures == [], f"{len(failures)} of {STARTERS} could not start: {failures[0]}"

        system = build_system(settings)
        try:
            system.goals.set_goals(tenant, "a1", one_objective(), meta())
            system.runner.catch_up()
            assert system.progress.goal_json(tenant, "a1") is not None
        finally:
            system.close()


def test_several_runners_project_each_event_once(
    system: System, make_settings: Callable[..., Settings], tenant: str, tmp_path: Path
) -> None:
    started_at = system.goals.log_position()
    for agent in AGENTS:
        system.goals.set_goals(tenant, agent, two_objectives(), meta())
    runners = [build_system(make_settings(PROJECTION_PAGE_SIZE=7, PROJECTION_POLL_S=0.02)) for _ in range(3)]
    # three concurrent writers, on disjoint agents so that none of them has to retry
    writers = [ProgressWriter(system, tenant, AGENTS[i::3], seed=i) for i in range(3)]
    try:
        for r in runners:
            r.start_projections()
        for w in writers:
            w.start()
        wait_until(lambda: all(w.batches >= 30 for w in writers), 120, "the writers")
        for w in writers:
            w.halt.set()
            w.join(60)
        assert [w.error for w in writers] == [None, None, None]
        end = system.goals.log_position()
        wait_until(lambda: all(p >= end for p, _, _ in tracking(system.store).values()), 120, "the runners")
        assert [r.runner.failure for r in runners] == [None, None, None]
    finally:
        for w in writers:
            w.halt.set()
        for r in runners:
            r.close()

    assert all(state == "live" for _, state, _ in tracking(system.store).values())
    events = tenant_events(system, tenant, after=started_at)
    history = history_rows(system.store, tenant)
    assert [r[0] for r in history] == [p for p, e in events if not isinstance(e, AgentGoals.Registered)]
    progress = progress_rows(system.store, tenant)
    assert (progress, history) == rebuilt_rows(system, tenant, tmp_path)
