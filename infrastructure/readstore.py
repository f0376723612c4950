"""Read-model stores: SQLite (embedded default) and PostgreSQL, behind one small port."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from psycopg_pool import ConnectionPool

from application.ports import Row

# Errors that mean "the store is unavailable right now", not "this data is wrong".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    sqlite3.OperationalError,
)


class SQLiteTx:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._cur = conn.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(sql, rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._cur.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._cur.execute(sql, params).fetchall())


class SQLiteReadStore:
    """One connection per thread on a WAL-mode file: readers never block the projector."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTx]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield SQLiteTx(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[SQLiteTx]:
        yield SQLiteTx(self._conn())

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresTx:
    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._cur = conn.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(_pg_sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(_pg_sql(sql), rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._cur.execute(_pg_sql(sql), params)
        return self._cur.fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cur.execute(_pg_sql(sql), params)
        return self._cur.fetchall()


class PostgresReadStore:
    dialect = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=True,
            name="read-models",
            kwargs={"autocommit": True},
        )

    @contextmanager
    def transaction(self) -> Iterator[PostgresTx]:
        with self._pool.connection() as conn, conn.transaction():
            yield PostgresTx(conn)

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        with self._pool.connection() as conn:
            yield PostgresTx(conn)

    def close(self) -> None:
        self._pool.close()
