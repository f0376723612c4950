"""Ports the application and read side need, implemented in infrastructure/."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder

Row = tuple[Any, ...]


class Tx(Protocol):
    """One transaction on a read-model store. SQL uses `?` placeholders on every dialect."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def append_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many new rows the fastest way the store has (binary COPY on PostgreSQL).
        No conflict handling: a duplicate key fails the transaction. Each value is of its
        column's type: str for text, int or float for numbers, an aware datetime for a
        timestamp with time zone, JSON text (str or UTF-8 bytes) for jsonb."""
        ...

    def upsert_rows(
        self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows, or overwrite every other column of the row with the same `key`, the
        fastest way the store has (COPY into a staging table on PostgreSQL). At most one row
        per key."""
        ...


class ShadowInUse(Exception):
    """Another rebuild, in this process or another, is building in the shadow store."""


class ReadStore(Protocol):
    """Where read models live: SQLite (embedded) or PostgreSQL."""

    dialect: str

    def transaction(self) -> AbstractContextManager[Tx]:
        """A read-write transaction, committed when the block ends without error."""
        ...

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only view for queries."""
        ...

    def close(self) -> None: ...

    def claim_shadow(self) -> AbstractContextManager[None]:
        """Hold the shadow store for one rebuild, against every process: ShadowInUse when
        another rebuild holds it. Let go when the block ends, or its process does."""
        ...

    def open_shadow(self) -> ReadStore:
        """A separate store, kept between runs, where rebuilds build their tables."""
        ...

    def swap_in(self, shadow: ReadStore, tables: Sequence[str], positions: dict[str, int]) -> None:
        """Replace `tables` with the shadow's and set tracking positions, atomically."""
        ...

    def drop_shadow(self, shadow: ReadStore) -> None: ...


class PositionLookup(Protocol):
    """Finds the log position at which an aggregate's given version was recorded."""

    def __call__(self, recorder: ApplicationRecorder, aggregate_id: UUID, version: int) -> int | None: ...


class Wakeup(Protocol):
    """Something the projection runner can wait on until new events may be in the log."""

    def wait(self, timeout: float) -> bool: ...

    def set(self) -> None: ...


class JobsUnavailable(Exception):
    """The job broker, or the store of job keys and states, cannot be reached now."""


@dataclass(frozen=True)
class HeldKey:
    """A job key held for one sent job; the token tells this holding from any later one."""

    key: str
    token: str


class JobQueue(Protocol):
    """Sends jobs to the workers. A job sent under a key (a poll's, a rebuild's) holds it from
    the send until it has run, and while it is held no other job is sent under it."""

    def hold(self, key: str) -> HeldKey | None:
        """Hold `key` for a job about to be sent; None while a job sent under it is pending or
        running. JobsUnavailable when the keys cannot be reached."""
        ...

    def send(self, actor: str, kwargs: dict[str, Any], *, held: HeldKey | None = None) -> None:
        """Queue a job for `actor`; a `held` key is let go when the job has run (or when it
        could not be queued: JobsUnavailable)."""
        ...

    def release(self, held: HeldKey) -> None:
        """Let go of a key no job was sent under (a no-op if it is no longer this holding's)."""
        ...


class JobRecords(Protocol):
    """The latest state of each named job of one kind, seen alike by every process."""

    def put(self, name: str, record: dict[str, Any]) -> None: ...

    def get(self, name: str) -> dict[str, Any] | None: ...

    def all(self) -> list[dict[str, Any]]: ...
