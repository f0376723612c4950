"""Read-model stores: SQLite (embedded default) and PostgreSQL, behind one small port."""

from __future__ import annotations

import fcntl
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg

from application.ports import ReadStore, Row, ShadowInUse
from infrastructure.breaker import CircuitBreaker
from infrastructure.connections import RECONNECT_TIMEOUT_S, ConnectionLimits, GuardedPool, connect_kwargs

SHADOW_SCHEMA = "a2a_rebuild"
# Any constant every process agrees on (like the schema lock's); the value itself means nothing.
REBUILD_LOCK_KEY = 0x6132615F72656275


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

    def append_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        marks = ", ".join("?" * len(columns))
        self._cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def upsert_rows(
        self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        self._cur.executemany(_upsert_sql(table, tuple(columns), tuple(key), None), rows)


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
        with _immediate(conn):
            yield SQLiteTx(conn)

    @contextmanager
    def read(self) -> Iterator[SQLiteTx]:
        yield SQLiteTx(self._conn())

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # --- rebuilds: a shadow file, copied in under one write lock -----------------------------

    @contextmanager
    def claim_shadow(self) -> Iterator[None]:
        """An exclusive lock on a file beside the shadow's (flock: the system lets go of it
        when the file is closed, or its process ends)."""
        with self._shadow_path().with_suffix(".lock").open("a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ShadowInUse(
                    f"a rebuild of {self._path.name} is running; try again when it ends"
                ) from None
            yield

    def open_shadow(self) -> ReadStore:
        return SQLiteReadStore(self._shadow_path())

    def _shadow_path(self) -> Path:
        return self._path.with_name(self._path.stem + ".rebuild.sqlite")

    def swap_in(self, shadow: ReadStore, tables: Sequence[str], positions: dict[str, int]) -> None:
        """Replace `tables` with the shadow's copies and set their tracking positions, in one
        transaction: readers see the old tables or the new ones, never a mix."""
        assert isinstance(shadow, SQLiteReadStore)
        conn = self._conn()
        conn.execute("ATTACH DATABASE ? AS shadow", (str(shadow._path),))
        try:
            with _immediate(conn):
                for table in tables:
                    _copy_table(conn, table)
                for name, position in positions.items():
                    conn.execute(
                        "UPDATE projection_tracking SET position = ?, state = 'live', error = NULL,"
                        " failed_position = NULL, updated_at = ? WHERE name = ?",
                        (position, time.time(), name),
                    )
        finally:
            conn.execute("DETACH DATABASE shadow")

    def drop_shadow(self, shadow: ReadStore) -> None:
        assert isinstance(shadow, SQLiteReadStore)
        shadow.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(shadow._path) + suffix).unlink(missing_ok=True)


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any error, a failed COMMIT's included:
    SQLite keeps the transaction open when its COMMIT fails (a deferred constraint, a busy or
    full disk), and this thread's connection would start every later one inside it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors (a full disk, I/O) have rolled it back already
            conn.execute("ROLLBACK")
        raise


def _copy_table(conn: sqlite3.Connection, table: str) -> None:
    """Recreate `table` in main from the attached shadow: same DDL, same indexes, same rows."""
    ddl = conn.execute(
        "SELECT type, sql FROM shadow.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL"
        " ORDER BY type = 'index'",
        (table,),
    ).fetchall()
    conn.execute(f'DROP TABLE IF EXISTS main."{table}"')
    for _, statement in ddl:
        conn.execute(statement)
    if any(
        kind == "table" and statement.upper().startswith("CREATE VIRTUAL TABLE") for kind, statement in ddl
    ):
        # A virtual table's rowid is not among its columns (`*`), and other tables refer to
        # its rows by it (an FTS5 index of a table's rows): it is copied too.
        columns = ", ".join(f'"{c[1]}"' for c in conn.execute(f'PRAGMA shadow.table_info("{table}")'))
        conn.execute(
            f'INSERT INTO main."{table}" (rowid, {columns}) SELECT rowid, {columns} FROM shadow."{table}"'
        )
        return
    conn.execute(f'INSERT INTO main."{table}" SELECT * FROM shadow."{table}"')


@lru_cache(maxsize=64)
def _upsert_sql(table: str, columns: tuple[str, ...], key: tuple[str, ...], stage: str | None) -> str:
    """INSERT of `columns` from a staging table (or from VALUES with `?` marks), overwriting
    the other columns of a row with the same `key`."""
    names = ", ".join(columns)
    rows = f"VALUES ({', '.join('?' * len(columns))})" if stage is None else f"SELECT {names} FROM {stage}"
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"INSERT INTO {table} ({names}) {rows} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


class JsonTextBinaryDumper(psycopg.adapt.Dumper):
    """JSON text (str or bytes) for a jsonb column in binary COPY: the text behind jsonb's
    format version byte."""

    format = psycopg.pq.Format.BINARY
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + (obj.encode() if isinstance(obj, str) else bytes(obj))


class CheckedInt4BinaryDumper(psycopg.adapt.Dumper):
    """An int for an integer column in binary COPY, refused when out of its range (the
    driver's own dumper would wrap it around)."""

    format = psycopg.pq.Format.BINARY
    oid = psycopg.postgres.types["int4"].oid

    def dump(self, obj: Any) -> bytes:
        try:
            return _INT4(obj)
        except struct.error as error:
            raise psycopg.DataError(f"{obj!r} is out of range for type integer") from error


_INT4 = struct.Struct("!i").pack


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Only where the type is known (a binary COPY's set_types).
    for dumper in (JsonTextBinaryDumper, CheckedInt4BinaryDumper):
        conn.adapters.register_dumper(None, dumper)


ColumnTypes = dict[str, dict[str, int]]  # table -> column -> type oid


class PostgresTx:
    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any], types: ColumnTypes) -> None:
        self._cur = conn.cursor()
        self._types = types
        self._staged: set[str] = set()

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

    def append_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Binary COPY: values cross as the column types' binary form, not as text to escape
        and parse (about a tenth of a catch-up's CPU went to formatting COPY text)."""
        statement = psycopg.sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            psycopg.sql.Identifier(table), psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, columns))
        )
        types = self._column_types(table, columns)
        try:
            with self._cur.copy(statement) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except Exception:
            self._types.pop(table, None)  # a column's type may have changed: look it up again
            raise

    def _column_types(self, table: str, columns: Sequence[str]) -> list[int]:
        """The type oids of `columns`, remembered per table by the store; a column it does not
        know (one added since) is looked up again."""
        known = self._types.get(table)
        if known is None or any(c not in known for c in columns):
            found = self._cur.execute(
                "SELECT attname, atttypid FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            ).fetchall()
            known = self._types[table] = {str(name): int(oid) for name, oid in found}
        return [known[c] for c in columns]

    def upsert_rows(
        self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Binary COPY into a temporary staging table (emptied at commit), then one INSERT ...
        ON CONFLICT from it: the rows cross in one stream, not as a statement each."""
        stage = f"stage_{table}"
        if stage in self._staged:  # used before in this transaction: emptied only at commit
            self._cur.execute(psycopg.sql.SQL("TRUNCATE {}").format(psycopg.sql.Identifier(stage)))
        self._staged.add(stage)
        self._cur.execute(
            psycopg.sql.SQL(
                "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            ).format(psycopg.sql.Identifier(stage), psycopg.sql.Identifier(table))
        )
        self.append_rows(stage, columns, rows)
        self._cur.execute(_upsert_sql(table, tuple(columns), tuple(key), stage))


class PostgresReadStore:
    dialect = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        schema: str | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._dsn = dsn
        self.schema = schema
        self._limits = limits = limits or ConnectionLimits()
        # The pool reads this dict at each connect: limit_statements changes it for new ones.
        self._connect: dict[str, Any] = {"autocommit": True, **connect_kwargs()}
        self._options = ""
        if schema is not None:
            with psycopg.connect(dsn, autocommit=True, **connect_kwargs()) as conn:
                conn.execute(
                    psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psycopg.sql.Identifier(schema))
                )
            self._options = self._connect["options"] = f"-c search_path={schema}"
        self._pool: GuardedPool[psycopg.Connection[Any]] = GuardedPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=True,
            name=f"read-models-{schema or 'live'}",
            kwargs=self._connect,
            configure=_configure,
            timeout=limits.pool_timeout_s,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
        )
        self._types: ColumnTypes = {}
        # The session holding the rebuild lock, while claim_shadow's block runs.
        self._claim: psycopg.Connection[Any] | None = None

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's figures of the pool (pool_size, pool_available, pool_max...)."""
        return self._pool.get_stats()

    def guard(self, breaker: CircuitBreaker) -> None:
        """Let `breaker` guard this store's connections: refused at once while it is open."""
        self._pool.guard(breaker)

    def limit_statements(self) -> None:
        """From now on, cancel statements that run longer than the limits say. Called once
        start-up's migrations, which may run long on a big store, are done; the connections
        made before are replaced."""
        self._connect["options"] = f"{self._options} {self._limits.options()}".strip()
        self._pool.drain()

    @contextmanager
    def transaction(self) -> Iterator[PostgresTx]:
        with self._pool.connection() as conn, conn.transaction():
            yield PostgresTx(conn, self._types)

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        with self._pool.connection() as conn:
            yield PostgresTx(conn, self._types)

    def close(self) -> None:
        self._pool.close()

    # --- rebuilds: a shadow schema, moved in under one transaction ---------------------------

    @contextmanager
    def claim_shadow(self) -> Iterator[None]:
        """A session advisory lock, on a connection of its own for the whole rebuild (the
        server lets go of it when that connection ends, its process with it). The swap runs
        on that same session, so a claim lost meanwhile can never swap."""
        # Connected as the pool's connections are: their timeouts and keepalives, their
        # schema and statement limits (the swap is limited as it always was).
        with psycopg.connect(self._dsn, **self._connect) as conn:
            held = conn.execute("SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK_KEY,)).fetchone()
            if not (held and held[0]):
                raise ShadowInUse(
                    "a rebuild of this database's read models is running; try again when it ends"
                )
            self._claim = conn
            try:
                yield
            finally:
                self._claim = None

    def open_shadow(self) -> ReadStore:
        # Not guarded, nor its statements limited: a rebuild runs long in the background.
        return PostgresReadStore(self._dsn, pool_size=2, schema=SHADOW_SCHEMA, limits=self._limits)

    def swap_in(self, shadow: ReadStore, tables: Sequence[str], positions: dict[str, int]) -> None:
        """Move the shadow's tables (and their partitions) over the live ones and set their
        tracking positions in one transaction; the live runner waits on the tracking lock.

        Only inside claim_shadow, on the session that holds the rebuild lock: it holds it for
        as long as it lives, so a session ended meanwhile (an idle timeout, an operator, a
        network cut) fails here, before anything moves, instead of swapping tables that a
        second rebuild may have been writing since. ShadowInUse then."""
        conn = self._claim
        if conn is None:
            raise ShadowInUse("a swap needs the rebuild's claim on the shadow schema")
        try:
            self._swap(conn, tables, positions)
        except psycopg.OperationalError as error:
            if not conn.broken:
                raise
            raise ShadowInUse(
                "the rebuild lost its lock (its database session ended) and did not swap; run it"
                " again: it resumes from the shadow"
            ) from error

    def _swap(self, conn: psycopg.Connection[Any], tables: Sequence[str], positions: dict[str, int]) -> None:
        ident = psycopg.sql.Identifier
        with conn.transaction():
            live = conn.execute("SELECT current_schema()").fetchone()
            assert live is not None
            conn.execute(
                "SELECT name FROM projection_tracking WHERE name = ANY(%s) FOR UPDATE", (list(positions),)
            )
            for table in tables:
                parts = conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace"
                    " WHERE p.relname = %s AND n.nspname = %s",
                    (table, SHADOW_SCHEMA),
                ).fetchall()
                conn.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(ident(table)))
                for (name,) in [(table,), *parts]:
                    conn.execute(
                        psycopg.sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                            ident(SHADOW_SCHEMA), ident(name), ident(live[0])
                        )
                    )
            for name, position in positions.items():
                conn.execute(
                    "UPDATE projection_tracking SET position = %s, state = 'live', error = NULL,"
                    " failed_position = NULL, updated_at = %s WHERE name = %s",
                    (position, time.time(), name),
                )

    def drop_shadow(self, shadow: ReadStore) -> None:
        shadow.close()
        with self._pool.connection() as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(SHADOW_SCHEMA)
                )
            )
