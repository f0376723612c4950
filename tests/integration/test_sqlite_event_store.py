"""The embedded event store after a COMMIT that fails: the connection is rolled back, so the
next save works instead of failing to BEGIN inside the abandoned transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest

from application.errors import ConcurrencyConflict
from application.goals import ProgressUpdate
from infrastructure.settings import Settings
from tests.integration.support import meta, one_objective, running_system

# A row in `armed` makes every insert into the events table add a child row whose parent does
# not exist, under a deferred foreign key: the insert succeeds and COMMIT fails.
TRAP = (
    "CREATE TABLE IF NOT EXISTS armed (on_ INTEGER)",
    "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
    "CREATE TRIGGER IF NOT EXISTS trap AFTER INSERT ON stored_events WHEN EXISTS (SELECT 1 FROM armed)"
    " BEGIN INSERT INTO child (parent_id) VALUES (42); END",
)


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_a_save_whose_commit_fails_leaves_the_store_usable(make_settings: Callable[..., Settings], tenant: str) -> None:
    with running_system(make_settings, COMMAND_RETRIES="1") as system:
        system.goals.set_goals(tenant, "a1", one_objective(), meta())
        datastore = system.goals.recorder.datastore  # type: ignore[attr-defined]
        with datastore.get_connection(commit=True) as conn:
            raw: sqlite3.Connection = conn._sqlite_conn
            raw.execute("PRAGMA foreign_keys = ON")  # per connection: deferred keys are checked at COMMIT
            for statement in TRAP:
                raw.execute(statement)
            raw.execute("INSERT INTO armed VALUES (1)")
        with pytest.raises(ConcurrencyConflict):  # an IntegrityError at COMMIT reads as a lost race
            system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 10}), meta())
        with datastore.get_connection(commit=True) as conn:
            conn._sqlite_conn.execute("DELETE FROM armed")
        recorded = system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 20}), meta())
        assert system.goals.goals_at(tenant, "a1").objective_progress == {"o1": 20.0}
        assert recorded.first.version == 3
