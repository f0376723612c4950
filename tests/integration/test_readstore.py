"""The read stores' bulk writes (binary COPY on PostgreSQL, statements on SQLite) store each
value exactly or refuse it; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from application.ports import ReadStore
from infrastructure.settings import Settings
from tests.integration.support import fresh_read_store, rows

AT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def store(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[ReadStore]:
    with fresh_read_store(make_settings(), tmp_path) as fresh:
        postgres = fresh.dialect == "postgres"
        with fresh.transaction() as tx:
            tx.execute(
                "CREATE TABLE samples (id BIGINT PRIMARY KEY, n INTEGER, x DOUBLE PRECISION,"
                f" at {'TIMESTAMPTZ' if postgres else 'TEXT'}, label TEXT,"
                f" data {'JSONB' if postgres else 'TEXT'})"
            )
        yield fresh


def _stored(store: ReadStore) -> list[tuple[object, ...]]:
    found = rows(store, "SELECT id, n, x, at, label, data FROM samples ORDER BY id")
    return [
        (
            i,
            n,
            x,
            at if isinstance(at, datetime) else datetime.fromisoformat(at) if at else None,
            label,
            data if not isinstance(data, str) else json.loads(data),
        )
        for i, n, x, at, label, data in found
    ]


def _at(store: ReadStore) -> object:
    return AT if store.dialect == "postgres" else AT.isoformat()


def test_appended_rows_come_back_as_written(store: ReadStore) -> None:
    columns = ("id", "n", "x", "at", "label", "data")
    with store.transaction() as tx:
        tx.append_rows(
            "samples",
            columns,
            [
                (1, 7, 50, _at(store), "naïve ünïcode \t tab", '{"a": [1, 2.5, null], "b": "x\\ny"}'),
                (2, None, None, None, None, None),
                (3, -(2**31), 1e300, _at(store), "", "{}"),
            ],
        )
    assert _stored(store) == [
        (1, 7, 50.0, AT, "naïve ünïcode \t tab", {"a": [1, 2.5, None], "b": "x\ny"}),
        (2, None, None, None, None, None),
        (3, -(2**31), 1e300, AT, "", {}),
    ]


def test_an_integer_out_of_range_is_refused_or_kept_never_wrapped(store: ReadStore) -> None:
    too_big = 2**31 + 7
    if store.dialect == "postgres":
        with pytest.raises(psycopg.DataError, match="out of range"), store.transaction() as tx:
            tx.append_rows("samples", ("id", "n"), [(1, too_big)])
        assert _stored(store) == []
    else:  # SQLite's integers are 64-bit
        with store.transaction() as tx:
            tx.append_rows("samples", ("id", "n"), [(1, too_big)])
        assert rows(store, "SELECT n FROM samples") == [(too_big,)]


def test_upserts_twice_in_one_transaction_and_a_column_added_later(store: ReadStore) -> None:
    with store.transaction() as tx:
        tx.upsert_rows("samples", ("id", "label"), ("id",), [(1, "first"), (2, "second")])
        tx.upsert_rows("samples", ("id", "label"), ("id",), [(1, "again"), (3, "third")])
    assert rows(store, "SELECT id, label FROM samples ORDER BY id") == [
        (1, "again"),
        (2, "second"),
        (3, "third"),
    ]
    with store.transaction() as tx:
        tx.execute("ALTER TABLE samples ADD COLUMN extra TEXT")
    with store.transaction() as tx:
        tx.append_rows("samples", ("id", "extra"), [(4, "added")])
    assert rows(store, "SELECT extra FROM samples WHERE id = 4") == [("added",)]
