"""The read side outlives a database outage: while PostgreSQL is stopped the projection runner
retries (a lost connection is not a bad event), and once the server is back it applies what
was written meanwhile, on its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from application.goals import ProgressUpdate
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.integration.support import meta, tracking, two_objectives, wait_until
from tests.private_servers import PrivatePostgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


def _caught_up(system: System) -> bool:
    try:
        end = system.goals.log_position()
        return all(position >= end for position, _, _ in tracking(system.store).values())
    except (psycopg.OperationalError, OperationalError):  # a pooled connection the restart ended
        return False


def _progress_once_back(system: System, tenant: str, value: float) -> int:
    """Record progress, trying again while the pools find their way back to the server."""
    deadline = time.monotonic() + 60
    while True:
        try:
            update = ProgressUpdate("outlasting", {"speed": value})
            return system.goals.record_progress(tenant, update, meta()).position
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_runner_retries_through_an_outage_and_catches_up_on_its_own(
    server: PrivatePostgres, tmp_path: Path, tenant: str
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        APP_ENV="test",
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=server.create_database(f"outage_{uuid.uuid4().hex[:8]}"),
        RUN_PROJECTIONS_IN_PROCESS="false",
        PROJECTION_POLL_S="0.05",
        PROJECTION_STALL_S="0.1",  # not advancing soon after it starts retrying
    )
    system = build_system(settings)
    try:
        system.goals.set_goals(tenant, "outlasting", two_objectives(), meta())
        system.start_projections()
        wait_until(lambda: _caught_up(system), 60, "the first catch-up")

        server.stop("fast")  # as a restart makes one: sessions ended, connections dropped
        wait_until(lambda: system.runner.activity().state == "retrying", 60, "the runner to meet the outage")
        assert system.runner.activity().error is not None  # the class of what the drivers raised
        wait_until(
            lambda: not system.runner.activity().advancing, 10, "the runner to say it is not advancing"
        )
        assert system.runner.running
        server.start()
        for value in (10, 20, 30):
            _progress_once_back(system, tenant, value)

        wait_until(lambda: _caught_up(system), 90, "the read models to catch up after the outage")
        assert system.runner.running
        wait_until(lambda: system.runner.activity().advancing, 10, "the runner to say it advances again")
        assert (system.runner.activity().state, system.runner.activity().error) == ("running", None)
        assert {state for _, state, _ in tracking(system.store).values()} == {"live"}
        assert system.history.count_by_action(tenant, "outlasting")["progress_updated"] == 3
    finally:
        system.close()
