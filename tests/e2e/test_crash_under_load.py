"""A server killed with SIGKILL under write load and started again, three times, on
PostgreSQL: every command it acknowledged is in the log, where it said, and once the
projections have caught up every read model equals a fresh rebuild from the log."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from domain.goals import AgentGoals
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.conftest import Server
from tests.e2e.traffic import Traffic, set_goals
from tests.integration.support import (
    fresh_settings,
    history_rows,
    progress_rows,
    rebuilt_rows,
    tenant_events,
    tracking,
    wait_until,
)

WRITERS = 16
ROUNDS = 3
ACKNOWLEDGED_PER_ROUND = 100  # the kill lands once this many commands were answered


def _acknowledged_since(traffic: Traffic, instant: float, count: int) -> bool:
    return sum(o.status == 200 for o in traffic.since(instant)) >= count


def _kill(server: Server) -> None:
    os.kill(server.proc.pid, signal.SIGKILL)
    assert server.proc.wait(30) == -signal.SIGKILL


def _caught_up(system: System, end: int) -> bool:
    return min(position for position, _, _ in tracking(system.store).values()) >= end


@pytest.mark.postgres
def test_a_server_killed_under_write_load_loses_no_acknowledged_command_and_projects_exactly_once(
    pg_url: str, start_server: Callable[..., Server], tenant: str, tmp_path: Path
) -> None:
    base = Settings(APP_ENV="test", DATA_DIR=str(tmp_path / "server-data"), DATABASE_URL=pg_url)  # type: ignore[call-arg]
    with fresh_settings(base, tmp_path) as settings:
        env = {
            "DATABASE_URL": settings.database_url,
            "RATE_LIMIT_WRITES": "100000/minute",  # one client sends the whole load
            "PROJECTION_PAGE_SIZE": "200",  # pages in flight when the kill lands
        }
        server = start_server(**env)
        headers = server.auth_headers(tenant)
        agents = [f"agent-{i:02d}" for i in range(WRITERS)]
        set_goals(server.url, headers, agents)

        traffic = Traffic(server.url, headers, agents, pause_s=0.005, timeout_s=30, writes_only=True)
        traffic.start()
        try:
            for _ in range(ROUNDS):
                began = time.monotonic()
                wait_until(
                    partial(_acknowledged_since, traffic, began, ACKNOWLEDGED_PER_ROUND),
                    120,
                    "commands acknowledged before the kill",
                )
                _kill(server)
                server = start_server(**env)
                traffic.url = server.url
            restarted = time.monotonic()
            wait_until(
                partial(_acknowledged_since, traffic, restarted, 20), 120, "commands after the last restart"
            )
        finally:
            traffic.stop()

        acknowledged = [o for o in traffic.outcomes if o.status == 200]
        assert len(acknowledged) >= ROUNDS * ACKNOWLEDGED_PER_ROUND
        system = build_system(settings.model_copy(update={"run_projections": False}))
        try:
            logged = {
                (e.agent_id, e.originator_version): p
                for p, e in tenant_events(system, tenant, after=0)
                if isinstance(e, AgentGoals.Event)
            }
            lost = [o for o in acknowledged if logged.get((o.agent, o.version or -1)) != o.position]
            assert not lost, f"{len(lost)} acknowledged commands not in the log as answered: {lost[:3]}"

            end = system.goals.log_position()
            wait_until(partial(_caught_up, system, end), 120, "the projections to catch up", every_s=0.2)
            assert {state for _, state, _ in tracking(system.store).values()} == {"live"}
            live = progress_rows(system.store, tenant), history_rows(system.store, tenant)
            assert live == rebuilt_rows(system, tenant, tmp_path)
        finally:
            system.close()
