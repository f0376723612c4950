"""A read store's transaction ends whatever happens, its COMMIT failing included: the rows are
taken back and the next transaction on the same connection starts as usual; on SQLite and on
PostgreSQL. (SQLite keeps a transaction open when its COMMIT fails.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from application.ports import ReadStore
from infrastructure.settings import Settings
from tests.integration.support import fresh_read_store, rows


@pytest.fixture
def store(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[ReadStore]:
    """A store with a child table whose foreign key is checked at COMMIT, not at INSERT."""
    with fresh_read_store(make_settings(), tmp_path) as fresh:
        if fresh.dialect == "sqlite":
            with fresh.read() as tx:  # this thread's connection, outside any transaction
                tx.execute("PRAGMA foreign_keys = ON")
        with fresh.transaction() as tx:
            tx.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            tx.execute(
                "CREATE TABLE child (id INTEGER PRIMARY KEY,"
                " parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        yield fresh


def test_a_commit_that_fails_takes_the_transaction_back_and_the_next_one_starts(store: ReadStore) -> None:
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)), store.transaction() as tx:
        tx.execute("INSERT INTO parent (id) VALUES (1)")
        tx.execute("INSERT INTO child (id, parent) VALUES (1, 99)")  # refused at COMMIT

    with store.transaction() as tx:
        tx.execute("INSERT INTO parent (id) VALUES (2)")
        tx.execute("INSERT INTO child (id, parent) VALUES (2, 2)")
    assert rows(store, "SELECT id FROM parent") == [(2,)], "nothing of the refused transaction"
    assert rows(store, "SELECT id, parent FROM child") == [(2, 2)]
