"""The event store: eventsourcing's PostgreSQL or SQLite persistence, configured from Settings."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, Notification, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder, PostgresFactory
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import Environment
from prometheus_client import Histogram
from psycopg.rows import DictRow, tuple_row

from infrastructure.breaker import CircuitBreaker
from infrastructure.connections import RECONNECT_TIMEOUT_S, ConnectionLimits, GuardedPool, connect_kwargs
from infrastructure.settings import Settings

# Where eventsourcing_env hands the connection limits to FailFastPostgresFactory.
POOL_TIMEOUT_KEY = "DB_POOL_TIMEOUT_S"
STATEMENT_TIMEOUT_KEY = "DB_STATEMENT_TIMEOUT_S"


def eventsourcing_env(settings: Settings) -> dict[str, str]:
    """The environment eventsourcing reads its persistence configuration from."""
    env = {
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size or ""),
        # Commands trust the cached aggregate instead of reading its newer events first: a
        # stale one (another process wrote) fails the version check on save, and GoalsApp
        # then evicts it and runs the command again on what the log holds.
        "AGGREGATE_CACHE_FASTFORWARD": "n",
    }
    if settings.is_postgres:
        url = urlsplit(settings.database_url)
        env.update(
            PERSISTENCE_MODULE="infrastructure.eventstore:FailFastPostgresFactory",
            POSTGRES_DBNAME=url.path.lstrip("/") or "postgres",
            POSTGRES_HOST=url.hostname or "127.0.0.1",
            POSTGRES_PORT=str(url.port or 5432),
            POSTGRES_USER=unquote(url.username or "postgres"),
            POSTGRES_PASSWORD=unquote(url.password or ""),
            POSTGRES_POOL_SIZE=str(settings.db_pool_size),
            POSTGRES_MAX_OVERFLOW=str(settings.db_pool_size),
            # Never POSTGRES_ENABLE_DB_FUNCTIONS: its function inserts without the table lock,
            # which lets tailing readers skip events with several writers. Our recorder keeps
            # the lock inside its own server-side function (see OrderedInsertRecorder).
            POSTGRES_ENABLE_DB_FUNCTIONS="n",
            APPLICATION_RECORDER_TOPIC="infrastructure.eventstore:OrderedInsertRecorder",
            **{
                POOL_TIMEOUT_KEY: str(settings.db_pool_timeout_s),
                STATEMENT_TIMEOUT_KEY: str(settings.db_statement_timeout_s),
            },
        )
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env.update(
            PERSISTENCE_MODULE="infrastructure.sqlite_events:EventStoreFactory",
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
                with psycopg.connect(self._dsn, autocommit=True, **connect_kwargs()) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self._channel)))
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake()
            except psycopg.OperationalError:
                # The runner still polls; reconnect after a pause.
                self._stop.wait(1.0)


class FailFastAggregateRecorder(PostgresAggregateRecorder):
    """eventsourcing's aggregate recorder (snapshots) without its retries.

    The library retries these calls ten times, 0.2 s apart, on any OperationalError: with the
    database down, each call lasted seconds, and a request waited the pool's timeout at each
    attempt. A failure is answered at once now; the breaker decides when to try again.
    """

    insert_events = inspect.unwrap(PostgresAggregateRecorder.insert_events)
    select_events = inspect.unwrap(PostgresAggregateRecorder.select_events)


class FailFastPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL persistence on a pool that fails fast: a caller waits at most
    DB_POOL_TIMEOUT_S for a connection, a statement runs at most DB_STATEMENT_TIMEOUT_S,
    connections time out connecting and keep TCP alive, and a lost connection is not retried
    for minutes with growing pauses. `guard_event_store` adds the circuit breaker."""

    aggregate_recorder_class = FailFastAggregateRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        limits = ConnectionLimits(
            pool_timeout_s=float(self.env.get(POOL_TIMEOUT_KEY) or ConnectionLimits.pool_timeout_s),
            statement_timeout_s=float(
                self.env.get(STATEMENT_TIMEOUT_KEY) or ConnectionLimits.statement_timeout_s
            ),
        )
        # The library's pool, made but not opened yet: replaced before any connection is made.
        made = self.datastore.pool
        assert isinstance(made.kwargs, dict)
        kwargs = {**made.kwargs, **connect_kwargs()}
        if limits.options():
            kwargs["options"] = limits.options()
        self.pool: GuardedPool[psycopg.Connection[DictRow]] = GuardedPool(
            connection_class=psycopg.Connection[DictRow],
            kwargs=kwargs,
            min_size=made.min_size,
            max_size=made.max_size,
            open=False,
            configure=self.datastore.after_connect_func(),
            name="event-store",
            timeout=limits.pool_timeout_s,
            max_waiting=made.max_waiting,
            max_lifetime=made.max_lifetime,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
        )
        self.datastore.pool = self.pool


def guard_event_store(app: Application[Any], breaker: CircuitBreaker) -> None:
    """Let `breaker` guard the event store's connections (PostgreSQL only)."""
    if isinstance(app.factory, FailFastPostgresFactory):
        app.factory.pool.guard(breaker)


class OrderedInsertRecorder(PostgresApplicationRecorder):
    """Appends events with one server-side call that takes the table lock, inserts and
    commits, so the lock is held for the database's own work only.

    eventsourcing's client-side path takes the same EXCLUSIVE lock but holds it across the
    round trips and the Python work up to COMMIT; with a busy interpreter that wait is what
    serialises every writer. Its stock server-side function (POSTGRES_ENABLE_DB_FUNCTIONS)
    skips the lock, which lets a tailing reader pass a gap that is filled later. This one
    keeps the lock: ids are issued and committed in the same order, so readers never skip.
    """

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        ident = psycopg.sql.Identifier
        self.pg_function_name_insert_events = f"a2a_insert_events_locked_{self.datastore.originator_id_type}"
        self.sql_invoke_pg_function_insert_events = psycopg.sql.SQL("SELECT * FROM {}.{}((%s))").format(
            ident(self.datastore.schema), ident(self.pg_function_name_insert_events)
        )
        self._group = GroupCommit(self._insert_now)
        self._sql_select_page = psycopg.sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{}"
            " WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(ident(self.datastore.schema), ident(self.events_table_name))
        self.sql_create_statements[self.create_insert_function_statement_index] = psycopg.sql.SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
            "BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(
            schema=ident(self.datastore.schema),
            function=ident(self.pg_function_name_insert_events),
            event=ident(self.stored_event_type_name),
            table=ident(self.events_table_name),
            channel=ident(self.channel_name),
            lock_timeout=self.datastore.lock_timeout,
        )

    # Without the library's retries, as in FailFastAggregateRecorder.
    select_events = inspect.unwrap(PostgresApplicationRecorder.select_events)
    select_notifications = inspect.unwrap(PostgresApplicationRecorder.select_notifications)
    max_notification_id = inspect.unwrap(PostgresApplicationRecorder.max_notification_id)

    def select_page(self, after: int, limit: int) -> list[Notification]:
        """Up to `limit` notifications after position `after`: select_notifications for the
        projection runner, fetched in binary (no hex decoding of every event's bytes)."""
        with self.datastore.get_connection() as conn, conn.cursor(binary=True, row_factory=tuple_row) as curs:
            curs.execute(self._sql_select_page, (after, limit), prepare=True)
            return [
                Notification(
                    id=r[0], originator_id=r[1], originator_version=r[2], topic=r[3], state=bytes(r[4])
                )
                for r in curs.fetchall()
            ]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if kwargs.get("tracking") is not None:  # process applications: keep the library's path
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        if not stored_events:
            return []
        return self._group.insert(list(stored_events))

    def _insert_now(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        """One transaction: lock, insert, commit. Ids come back in the order of the events."""
        events = [
            self.construct_pg_stored_event(
                originator_id=e.originator_id,
                originator_version=e.originator_version,
                topic=e.topic,
                state=e.state,
            )
            for e in stored_events
        ]
        try:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(self.sql_invoke_pg_function_insert_events, (events,), prepare=True)
                return [int(row[self.pg_function_name_insert_events]) for row in curs.fetchall()]
        except psycopg.errors.UniqueViolation as error:
            raise IntegrityError(error) from error


GROUP_SAVES = Histogram(
    "a2a_commit_group_saves",
    "Saves committed together in one event-store transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


@dataclass
class _Waiting:
    events: list[StoredEvent]
    wake: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    finished: bool = False
    ids: list[int] | None = None
    error: BaseException | None = None


class GroupCommit:
    """Commits the events of concurrent saves together (group commit).

    Appends are serial (the table lock), and each costs a commit: a round trip and a WAL
    flush. A save that arrives while another commit is in flight waits for it; then the
    saves that queued meanwhile go in one transaction, with one flush. Nothing waits on
    purpose: a lone save commits at once. Each save gets exactly its own ids, and returns
    only once the transaction that held it committed. The thread that leads stops once its
    own save is done and hands over to the next in the queue. When a group fails on a
    duplicate version (two saves raced on one aggregate, or a cache was stale), its saves
    are retried one by one, so only the conflicting one fails, with IntegrityError.
    """

    def __init__(self, insert: Callable[[Sequence[StoredEvent]], list[int]], max_events: int = 1000) -> None:
        self._insert = insert
        self._max_events = max_events
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._leading = False

    @property
    def queued(self) -> int:
        """Saves waiting for their group's transaction."""
        with self._lock:
            return len(self._queue)

    def insert(self, events: list[StoredEvent]) -> list[int]:
        me = _Waiting(events)
        with self._lock:
            self._queue.append(me)
            if not self._leading:
                self._leading = me.leads = True
        while not me.finished:
            if me.leads:
                self._lead(me)
            else:
                me.wake.wait()
                me.wake.clear()
        if me.error is not None:
            raise me.error
        assert me.ids is not None
        return me.ids

    def _lead(self, me: _Waiting) -> None:
        """Commit groups from the head of the queue until `me` is committed, then hand over."""
        while not me.finished:
            with self._lock:
                group: list[_Waiting] = [self._queue.pop(0)]
                size = len(group[0].events)
                while self._queue and size + len(self._queue[0].events) <= self._max_events:
                    size += len(self._queue[0].events)
                    group.append(self._queue.pop(0))
            self._commit(group)
        with self._lock:
            if self._queue:
                self._queue[0].leads = True
                self._queue[0].wake.set()
            else:
                self._leading = False

    def _commit(self, group: list[_Waiting]) -> None:
        GROUP_SAVES.observe(len(group))
        try:
            if len(group) == 1:
                group[0].ids = self._insert(group[0].events)
            else:
                try:
                    ids = self._insert([e for waiting in group for e in waiting.events])
                except IntegrityError:
                    for waiting in group:
                        try:
                            waiting.ids = self._insert(waiting.events)
                        except BaseException as error:
                            waiting.error = error  # raised to its own caller
                else:
                    start = 0
                    for waiting in group:
                        waiting.ids = ids[start : start + len(waiting.events)]
                        start += len(waiting.events)
        except BaseException as error:
            for waiting in group:  # the transaction failed: none of the group committed
                if waiting.ids is None and waiting.error is None:
                    waiting.error = error
        finally:
            for waiting in group:
                waiting.finished = True
                waiting.wake.set()
