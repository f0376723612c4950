"""Failing fast on PostgreSQL: a statement that runs past DB_STATEMENT_TIMEOUT_S is cancelled.

On the shared server, in this session's own database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError

from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.integration.support import meta, one_objective

pytestmark = pytest.mark.postgres


@pytest.fixture
def system(pg_url: str, tmp_path: Path) -> Iterator[System]:
    settings = Settings(
        APP_ENV="test",
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=pg_url,
        RUN_PROJECTIONS_IN_PROCESS="false",
        DB_STATEMENT_TIMEOUT_S="0.5",
    )  # type: ignore[call-arg]
    built = build_system(settings)
    yield built
    built.close()


def _in_thread(work: threading.Thread, bound_s: float) -> None:
    work.start()
    work.join(bound_s)
    assert not work.is_alive(), f"still waiting after {bound_s}s"


def test_a_query_running_past_the_statement_timeout_is_cancelled(system: System) -> None:
    errors: list[BaseException] = []

    def query() -> None:
        try:
            with system.store.read() as tx:
                tx.fetchone("SELECT pg_sleep(5)")
        except BaseException as error:
            errors.append(error)

    _in_thread(threading.Thread(target=query), 30)
    assert [type(e) for e in errors] == [psycopg.errors.QueryCanceled]


def test_a_command_waiting_on_the_log_lock_is_cancelled_instead_of_waiting_for_ever(
    system: System, pg_url: str, tenant: str
) -> None:
    table = system.goals.recorder.events_table_name  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def command() -> None:
        try:
            system.goals.set_goals(tenant, "a1", one_objective(), meta())
        except BaseException as error:
            errors.append(error)

    with psycopg.connect(pg_url) as holder:
        holder.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')  # as a stuck writer would
        _in_thread(threading.Thread(target=command), 30)
    assert [type(e) for e in errors] == [StoreOperationalError]
    assert isinstance(errors[0].__cause__, psycopg.errors.QueryCanceled)
    assert system.goals.set_goals(tenant, "a1", one_objective(), meta()).items[0].created
