"""Running projections are woken by writes: read-your-writes without calling catch_up, well
before the poll interval (PROJECTION_POLL_S=30 here); on PostgreSQL also by another writer's
NOTIFY."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from application.goals import ProgressUpdate
from infrastructure.settings import Settings
from interfaces.bootstrap import System
from projections.freshness import wait_for_position
from tests.integration.support import meta, one_objective, running_system, tracking, wait_until

SLOW_POLL = 30
BOUND_S = 10  # a bound on a wait, far below the poll interval; not a timing assertion


def _caught_up(system: System) -> bool:
    end = system.goals.log_position()
    return all(p >= end for p, _, _ in tracking(system.store).values())


def test_own_writes_wake_the_runner(make_settings: Callable[..., Settings], tenant: str) -> None:
    with running_system(make_settings, PROJECTION_POLL_S=SLOW_POLL) as system:
        system.start_projections()
        wait_until(lambda: _caught_up(system), 60, "the initial catch-up")
        time.sleep(0.2)  # let the runner go back to sleep on its 30 s poll

        result = system.goals.set_goals(tenant, "w1", one_objective(), meta())
        wait_for_position(system.store, system.runner.names, result.position, BOUND_S)
        assert system.progress.goal_json(tenant, "w1") is not None

        for value in (10, 20, 30):
            time.sleep(0.05)
            result = system.goals.record_progress(tenant, ProgressUpdate("w1", {"o1": value}), meta())
            wait_for_position(system.store, system.runner.names, result.position, BOUND_S)
            assert (
                system.goals.goals_at(tenant, "w1").update_count
                == system.history.count_by_action(tenant, "w1")["progress_updated"]
            )
        assert system.runner.failure is None


def _listening(database_url: str, application_name: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query ILIKE 'LISTEN%%'",
            (application_name,),
        ).fetchone()
    return bool(found and found[0] > 0)


def test_another_writer_wakes_the_runner_through_notify(
    make_settings: Callable[..., Settings], store_kind: str, tenant: str
) -> None:
    if store_kind != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite runners poll for other processes' writes")
    base_url = make_settings().database_url
    name = f"listen-{tenant}"
    with running_system(
        make_settings, DATABASE_URL=f"{base_url}?application_name={name}", PROJECTION_POLL_S=SLOW_POLL
    ) as reader:
        reader.start_projections()
        wait_until(lambda: _listening(base_url, name), 30, "the listener's LISTEN")
        wait_until(lambda: _caught_up(reader), 60, "the initial catch-up")
        time.sleep(0.2)  # the runner is asleep on its 30 s poll now

        with running_system(make_settings) as writer:
            assert writer.goals is not reader.goals
            result = writer.goals.set_goals(tenant, "n1", one_objective(), meta("elsewhere"))
            wait_for_position(reader.store, reader.runner.names, result.position, BOUND_S)
            assert reader.progress.goal_json(tenant, "n1") is not None

            time.sleep(0.2)
            again = writer.goals.record_progress(tenant, ProgressUpdate("n1", {"o1": 50}), meta("elsewhere"))
            wait_for_position(reader.store, reader.runner.names, again.position, BOUND_S)
            entries = reader.history.history(tenant, "n1", after=0, limit=10).items
            assert [e["actor"] for e in entries][-1] == "elsewhere"
        assert reader.runner.failure is None
