"""A server computes the system analytics of its busiest tenants at start-up, so that the
first request finds them remembered; on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from application.ports import ReadStore
from infrastructure.settings import Settings
from interfaces.bootstrap import build_system
from projections.analytics import AnalyticsQueries
from projections.analytics_memory import AnalyticsMemory
from projections.event_facts import EventFactsProjection
from projections.goal_progress import GoalProgressProjection
from tests.integration.support import Fleet, fresh_read_store, fresh_settings, running_system

START = datetime(2024, 6, 1, tzinfo=UTC)


def fleet_of(store: ReadStore, tenant: str, agents: int) -> Fleet:
    """`agents` agents of `tenant` with a target date at day 19, each with a week of daily
    progress: agent-n makes 4(n + 1) points a day, so only agent-0 is late."""
    fleet = Fleet(store, tenant)
    for n in range(agents):
        agent = f"agent-{n}"
        fleet.start(agent, START, "2024-06-20")
        for day in range(1, 8):
            fleet.progress(agent, START + timedelta(days=day), 4 * day * (n + 1))
    fleet.project()
    return fleet


@pytest.fixture
def store(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[ReadStore]:
    """An empty read store with the goal_progress and event_facts tables."""
    with fresh_read_store(make_settings(), tmp_path) as fresh:
        with fresh.transaction() as tx:
            GoalProgressProjection().create_tables(tx)
            EventFactsProjection().create_tables(tx)
        yield fresh


def test_the_busiest_tenants_are_those_with_most_goals_within_what_is_remembered(store: ReadStore) -> None:
    for tenant, agents in (("small", 1), ("large", 3), ("medium", 2)):
        fleet_of(store, tenant, agents)
    analytics = AnalyticsQueries(store)
    assert analytics.busiest_tenants(16) == ["large", "medium", "small"]
    assert analytics.busiest_tenants(2) == ["large", "medium"]
    assert AnalyticsQueries(store, AnalyticsMemory(tenants=1)).busiest_tenants(16) == ["large"]


def test_warming_leaves_the_busiest_remembered_last_and_answers_as_a_fresh_query(store: ReadStore) -> None:
    fleets = {tenant: fleet_of(store, tenant, agents) for tenant, agents in (("large", 3), ("small", 1))}
    now = START + timedelta(days=8)
    analytics = AnalyticsQueries(store, AnalyticsMemory(tenants=2))
    analytics.warm(analytics.busiest_tenants(16), now=now)
    # the busiest is the last the memory would let go of
    assert analytics.remembered == ["small", "large"]
    warm = analytics.system("large", now=now)
    assert warm == AnalyticsQueries(store).system("large", now=now)
    assert [r["agent_id"] for r in warm["at_risk"]] == ["agent-0"]
    # what follows the warm-up is read on top of it
    fleets["large"].progress("agent-0", START + timedelta(days=8), 60)
    fleets["large"].project()
    later = START + timedelta(days=9)
    assert analytics.system("large", now=later) == AnalyticsQueries(store).system("large", now=later)


def test_a_server_warms_the_analytics_in_the_background_unless_told_not_to(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with fresh_settings(make_settings(), tmp_path) as fresh:
        where = {"DATA_DIR": str(fresh.data_dir), "DATABASE_URL": fresh.database_url}
        with running_system(make_settings, **where) as system:
            fleet_of(system.store, "busy", 2)
            assert system.analytics_warmth == "on demand"
            thread = system.warm_analytics()
            assert thread is not None
            thread.join(30)
            assert system.analytics_warmth == "warm"
            assert system.analytics.remembered == ["busy"]
        with running_system(make_settings, ANALYTICS_WARM_TENANTS=0, **where) as system:
            assert system.warm_analytics() is None
            assert system.analytics_warmth == "on demand"
            assert system.analytics.remembered == []


def test_a_failed_warm_up_is_reported_and_leaves_requests_to_compute_on_demand(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fresh_settings(make_settings(), tmp_path) as fresh:
        where = {"DATA_DIR": str(fresh.data_dir), "DATABASE_URL": fresh.database_url}
        with running_system(make_settings, **where) as system:
            with system.store.transaction() as tx:
                tx.execute("ALTER TABLE goal_progress RENAME TO goal_progress_away")
            thread = system.warm_analytics()
            assert thread is not None
            thread.join(30)
            assert system.analytics_warmth == "failed"
            assert "warming the analytics failed" in caplog.text
            with system.store.transaction() as tx:
                tx.execute("ALTER TABLE goal_progress_away RENAME TO goal_progress")
            fleet_of(system.store, "busy", 1)
            assert system.analytics.system("busy")["agents_with_goals"] == 1


def test_a_warm_up_stops_before_its_next_tenant_once_told_and_a_closing_server_waits_for_it(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fresh_settings(make_settings(), tmp_path) as fresh:
        where = {"DATA_DIR": str(fresh.data_dir), "DATABASE_URL": fresh.database_url}
        system = build_system(make_settings(RUN_PROJECTIONS_IN_PROCESS="false", **where))
        for tenant, agents in (("busy", 2), ("quiet", 1)):
            fleet_of(system.store, tenant, agents)
        stopped = threading.Event()
        stopped.set()
        system.analytics.warm(["busy", "quiet"], stop=stopped)
        assert system.analytics.remembered == []

        thread = system.warm_analytics()
        assert thread is not None
        system.close()
        assert not thread.is_alive()
        assert "warming the analytics failed" not in caplog.text
