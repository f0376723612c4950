"""Feeds read models from the notification log, a page per transaction.

Each page is applied to every projection and their tracking positions are written in the
same transaction, so an event is applied exactly once however the process dies. A
projection that raises stops the runner where it is: it never skips an event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from application.ports import ReadStore, Tx

log = logging.getLogger(__name__)

LogPage = Sequence[tuple[int, Any]]
ReadLog = Callable[[int, int], LogPage]


class Projection(Protocol):
    """A read model: its tables, and how a page of events changes them."""

    name: str

    @property
    def tables(self) -> Sequence[str]:
        """The tables this read model owns (what a rebuild swaps in)."""
        ...

    def create_tables(self, tx: Tx) -> None: ...

    def apply(self, tx: Tx, events: LogPage) -> None: ...


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    state: str
    error: str | None
    failed_position: int | None = None


class ProjectionFailed(Exception):
    """A projection raised while applying events; `position` is exact when known."""

    def __init__(self, name: str, position: int | None, cause: BaseException) -> None:
        where = f"at position {position}" if position is not None else "in a page"
        super().__init__(f"{name} failed {where}: {type(cause).__name__}: {cause}")
        self.name = name
        self.position = position
        self.cause = cause


class NotSkippable(Exception):
    def __init__(self, name: str, position: int, status: ProjectionStatus | None) -> None:
        found = f"{status.state} at {status.failed_position}" if status else "unknown"
        super().__init__(f"{name} has no failure at position {position} to skip (it is {found})")


TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL, state TEXT NOT NULL,"
    " error TEXT, failed_position BIGINT, updated_at DOUBLE PRECISION NOT NULL)"
)


class ProjectionRunner:
    def __init__(
        self,
        read_log: ReadLog,
        store: ReadStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 1000,
        poll_s: float = 0.5,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        """`transient` errors (a database restarting) are retried after a pause; any other
        error stops the runner at the failing page."""
        self._read_log = read_log
        self._store = store
        self._projections = list(projections)
        self._page_size = page_size
        self._poll_s = poll_s
        self._transient = transient
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    @property
    def names(self) -> list[str]:
        return [p.name for p in self._projections]

    @property
    def projections(self) -> list[Projection]:
        return list(self._projections)

    def setup(self) -> None:
        with self._store.transaction() as tx:
            tx.execute(TRACKING_DDL)
            for projection in self._projections:
                projection.create_tables(tx)
                tx.execute(
                    "INSERT INTO projection_tracking (name, position, state, error, updated_at)"
                    " VALUES (?, 0, 'live', NULL, ?) ON CONFLICT (name) DO NOTHING",
                    (projection.name, time.time()),
                )

    def statuses(self) -> list[ProjectionStatus]:
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT name, position, state, error, failed_position FROM projection_tracking"
            )
        wanted = set(self.names)
        return [
            ProjectionStatus(r[0], int(r[1]), r[2], r[3], None if r[4] is None else int(r[4]))
            for r in rows
            if r[0] in wanted
        ]

    def run_page(self) -> int:
        """Apply the next page of the log; returns how many events it held (0: caught up).

        When a projection raises, the page is applied again event by event, so everything
        before the failing event is kept and the failure names its exact position.
        """
        start = min((s.position for s in self.statuses()), default=0)
        page = self._read_log(start, self._page_size)
        if not page:
            return 0
        try:
            self._apply(page)
        except ProjectionFailed:
            for item in page:
                self._apply([item])
        return len(page)

    def _apply(self, page: LogPage) -> None:
        with self._store.transaction() as tx:
            positions = self._lock_positions(tx)
            for projection in self._projections:
                pending = [(pos, e) for pos, e in page if pos > positions[projection.name]]
                if not pending:
                    continue
                try:
                    projection.apply(tx, pending)
                except self._transient:
                    raise
                except Exception as error:
                    exact = pending[0][0] if len(pending) == 1 else None
                    raise ProjectionFailed(projection.name, exact, error) from error
                tx.execute(
                    "UPDATE projection_tracking SET position = ?, state = 'live', error = NULL,"
                    " failed_position = NULL, updated_at = ? WHERE name = ?",
                    (pending[-1][0], time.time(), projection.name),
                )

    def skip_check(self, name: str, position: int, tx: Tx | None = None) -> None:
        """Raise NotSkippable unless `name` failed exactly at `position`."""
        sql = "SELECT position, state, failed_position FROM projection_tracking WHERE name = ?"
        if tx is None:
            with self._store.read() as reader:
                row = reader.fetchone(sql, (name,))
        else:
            row = tx.fetchone(sql, (name,))
        status = ProjectionStatus(name, int(row[0]), row[1], None, row[2]) if row else None
        if (
            name not in self.names
            or status is None
            or status.state != "failed"
            or status.failed_position != position
        ):
            raise NotSkippable(name, position, status)

    def skip(self, name: str, position: int) -> None:
        """Move a failed projection past the one event it failed on (an operator's decision,
        which the caller records in the log). The other projections still apply that event."""
        with self._store.transaction() as tx:
            self.skip_check(name, position, tx)
            tx.execute(
                "UPDATE projection_tracking SET position = ?, state = 'live', error = NULL,"
                " failed_position = NULL, updated_at = ? WHERE name = ?",
                (position, time.time(), name),
            )
        self.failure = None

    def catch_up(self) -> int:
        """Apply pages until the log is exhausted; a failure is recorded, then raised."""
        total = 0
        try:
            while n := self.run_page():
                total += n
        except ProjectionFailed as error:
            self._fail(error)
            raise
        return total

    def _lock_positions(self, tx: Tx) -> dict[str, int]:
        # FOR UPDATE serialises runners in several processes on PostgreSQL; SQLite's
        # BEGIN IMMEDIATE already holds the write lock.
        lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
        rows = tx.fetchall(f"SELECT name, position FROM projection_tracking{lock}")
        return {r[0]: int(r[1]) for r in rows}

    # --- background loop -----------------------------------------------------------------

    def wake(self, _position: int | None = None) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        self._loop()

    def _loop(self) -> None:
        backoff = self._poll_s
        while not self._stopping.is_set():
            try:
                self.catch_up()
                backoff = self._poll_s
            except self._transient as error:
                log.warning("projections paused, store unavailable (%s); retrying in %.1fs", error, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except ProjectionFailed:
                return  # recorded by catch_up
            except Exception as error:
                self._fail(error)
                return
            self._wakeup.wait(self._poll_s)
            self._wakeup.clear()

    def _fail(self, error: Exception) -> None:
        """Record the failure where admins see it; the runner stops and never skips ahead."""
        self.failure = error
        log.exception("projection runner stopped: it will not skip the failing event")
        if isinstance(error, ProjectionFailed):
            names, cause, position = [error.name], error.cause, error.position
        else:
            names, cause, position = self.names, error, None
        marks = ", ".join("?" * len(names))
        try:
            with self._store.transaction() as tx:
                tx.execute(
                    "UPDATE projection_tracking SET state = 'failed', error = ?, failed_position = ?,"
                    f" updated_at = ? WHERE name IN ({marks})",
                    (f"{type(cause).__name__}: {cause}", position, time.time(), *names),
                )
        except Exception:
            log.exception("could not record the projection failure")

    def resume(self) -> None:
        """Start the background loop again after a failure was fixed or skipped."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self.failure = None
            self.start()
