"""The event store: eventsourcing's PostgreSQL or SQLite persistence, configured from Settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import unquote, urlsplit
from uuid import UUID

import psycopg
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from infrastructure.settings import Settings


def eventsourcing_env(settings: Settings) -> dict[str, str]:
    """The environment eventsourcing reads its persistence configuration from."""
    env = {"AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size or "")}
    if settings.is_postgres:
        url = urlsplit(settings.database_url)
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=url.path.lstrip("/") or "postgres",
            POSTGRES_HOST=url.hostname or "127.0.0.1",
            POSTGRES_PORT=str(url.port or 5432),
            POSTGRES_USER=unquote(url.username or "postgres"),
            POSTGRES_PASSWORD=unquote(url.password or ""),
            POSTGRES_POOL_SIZE=str(settings.db_pool_size),
            POSTGRES_MAX_OVERFLOW=str(settings.db_pool_size),
            # Never POSTGRES_ENABLE_DB_FUNCTIONS: with several writers it lets tailing readers
            # skip events. The table lock the default path takes keeps commit order = id order.
            POSTGRES_ENABLE_DB_FUNCTIONS="n",
        )
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=str(settings.events_path),
            SQLITE_LOCK_TIMEOUT="10",
        )
    return env


def position_of(recorder: ApplicationRecorder, aggregate_id: UUID, version: int) -> int | None:
    """The notification id (log position) of one stored event."""
    if isinstance(recorder, PostgresApplicationRecorder):
        sql = psycopg.sql.SQL(
            "SELECT notification_id FROM {}.{} WHERE originator_id=%s AND originator_version=%s"
        ).format(
            psycopg.sql.Identifier(recorder.datastore.schema),
            psycopg.sql.Identifier(recorder.events_table_name),
        )
        with recorder.datastore.get_connection() as conn, conn.cursor() as cur:
            cur.execute(sql, (aggregate_id, version))
            row = cur.fetchone()
            return int(row["notification_id"]) if row else None
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as cur:
            cur.execute(
                f"SELECT rowid FROM {recorder.events_table_name} "
                "WHERE originator_id=? AND originator_version=?",
                (aggregate_id.hex, version),
            )
            row = cur.fetchone()
            return int(row[0]) if row else None
    return None


class PostgresListener:
    """Sets `wake` whenever the event table's NOTIFY channel fires (LISTEN/NOTIFY)."""

    def __init__(self, dsn: str, channel: str, wake: Callable[[], None]) -> None:
        self._dsn = dsn
        self._channel = channel
        self._wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self._channel)))
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake()
            except psycopg.OperationalError:
                # The runner still polls; reconnect after a pause.
                self._stop.wait(1.0)
