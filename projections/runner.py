"""Feeds read models from the notification log, a page per transaction.

Each page is applied to every projection and their tracking positions are written in the
same transaction, so an event is applied exactly once however the process dies. A
projection that raises stops the runner where it is: it never skips an event.

While all its projections are healthy, the runner pipelines: a page's SQL runs on the
write-behind thread (see `projections.write_behind`) while the next page is folded, on top
of the tracking rows the page in flight will leave. Each page checks, under the tracking
lock, that the rows are exactly those; if not, or if a page fails, everything goes back to
what is committed and the runner carries on page by page, as it does with a failed projection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable

from prometheus_client import Counter, Gauge

from application.ports import ReadStore, Tx
from projections.write_behind import Superseded, WriteBehind

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


@runtime_checkable
class Remembering(Protocol):
    """A projection that keeps state in memory between pages (optional methods)."""

    def fresh(self) -> Projection:
        """A new instance with empty memory: each runner applies through its own."""
        ...

    def forget(self) -> None:
        """Drop the memory: the tables may differ from what it remembers."""
        ...


def _forget(projection: Projection) -> None:
    if isinstance(projection, Remembering):
        projection.forget()


def _fresh(projection: Projection) -> Projection:
    return projection.fresh() if isinstance(projection, Remembering) else projection


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
        if status is None:
            found = "not a read model here"
        elif status.state == "failed":
            found = f"failed at position {status.failed_position}"
        else:
            found = f"{status.state}, at position {status.position}"
        super().__init__(f"{name} has no failure at position {position} to skip (it is {found})")


PROJECTED = Gauge("a2a_projection_position", "Last log position applied, per read model.", ["projection"])
FAILURES = Counter("a2a_projection_failures_total", "Read-model failures, per read model.", ["projection"])

# Events an operator decided a read model passes over; rebuilds honour them too.
SKIPS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_skips (name TEXT NOT NULL, position BIGINT NOT NULL,"
    " PRIMARY KEY (name, position))"
)


def load_skips(store: ReadStore) -> dict[str, set[int]]:
    with store.read() as tx:
        rows = tx.fetchall("SELECT name, position FROM projection_skips")
    skips: dict[str, set[int]] = {}
    for name, position in rows:
        skips.setdefault(str(name), set()).add(int(position))
    return skips


TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL, state TEXT NOT NULL,"
    " error TEXT, failed_position BIGINT, updated_at DOUBLE PRECISION NOT NULL)"
)


Tokens = dict[str, tuple[int, float]]  # projection name -> (position, updated_at) of its tracking row


@dataclass
class _InFlight:
    """A page queued on the write-behind thread, and the tracking rows it leaves."""

    done: Future[None]
    tokens: Tokens
    events: int


class ProjectionRunner:
    def __init__(
        self,
        read_log: ReadLog,
        store: ReadStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 5000,
        poll_s: float = 0.5,
        transient: tuple[type[BaseException], ...] = (),
        skips: dict[str, set[int]] | None = None,
    ) -> None:
        """`transient` errors (a database restarting) are retried after a pause; any other
        error stops the runner at the failing page."""
        self._read_log = read_log
        self._store = store
        # Each runner owns its remembering projections' memory (a rebuild runs beside the live one).
        self._projections = [_fresh(p) for p in projections]
        # (position, updated_at) of the tracking rows as this runner last committed them: a
        # projection's memory is trusted only while its row still says exactly that.
        self._committed: dict[str, tuple[int, float]] = {}
        self._page_size = page_size
        self._poll_s = poll_s
        self._transient = transient
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self._retrying: set[str] = set()
        self._first_page = True
        self._failed_now: list[ProjectionFailed] = []
        self._skips: dict[str, set[int]] = {k: set(v) for k, v in (skips or {}).items()}
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future[LogPage]] | None = None
        self._writer: WriteBehind | None = None
        self._in_flight: list[_InFlight] = []
        # The tracking rows as they will be once the pages in flight commit; None when
        # pipelining is off (a projection failed, or nothing is known yet).
        self._predicted: Tokens | None = None
        self._applied = 0

    @property
    def names(self) -> list[str]:
        return [p.name for p in self._projections]

    @property
    def projections(self) -> list[Projection]:
        return list(self._projections)

    @property
    def reached(self) -> int:
        """The lowest position the projections have reached, counting the page in flight
        (for progress reports; statuses() tells what is committed)."""
        tokens = self._predicted or self._committed
        return min((position for position, _ in tokens.values()), default=0)

    def setup(self) -> None:
        with self._store.transaction() as tx:
            tx.execute(TRACKING_DDL)
            tx.execute(SKIPS_DDL)
            for projection in self._projections:
                projection.create_tables(tx)
                tx.execute(
                    "INSERT INTO projection_tracking (name, position, state, error, updated_at)"
                    " VALUES (?, 0, 'live', NULL, ?) ON CONFLICT (name) DO NOTHING",
                    (projection.name, time.time()),
                )
        for name, positions in load_skips(self._store).items():
            self._skips.setdefault(name, set()).update(positions)

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
        """Apply the next page of the log and wait for its commit; returns how many events it
        held (0: caught up)."""
        try:
            return self._step()
        finally:
            self._settle()

    def _step(self) -> int:
        """Apply the next page, or queue it behind the one in flight; how many events it held.

        Pipelining needs every projection healthy; otherwise (and after anything went
        wrong) the page is applied here, in a transaction of its own.
        """
        if self._predicted is None or self._retrying or self._stopping.is_set():
            self._settle()
            return self._run_page_now()
        page = self._read_page(min(position for position, _ in self._predicted.values()))
        if not page:
            return 0
        try:
            self._submit(page, self._predicted)
        except Exception:
            # A projection raised while folding (or a read it made failed): from what is
            # committed, page by page, to find the exact event.
            self._settle()
            self._recover()
            return self._run_page_now()
        self._settle(keep=1)
        return len(page)

    def _submit(self, page: LogPage, expected: Tokens) -> None:
        """Fold `page` on top of the `expected` tracking rows and queue its writes."""
        if self._writer is None:
            self._writer = WriteBehind(self._store)
        tx = self._writer.begin()
        tx.queue(partial(self._check_tracking, expected))
        tokens: Tokens = {}
        try:
            for projection in self._projections:
                position, updated_at = expected[projection.name]
                pending = self._pending(projection.name, page, position)
                if pending:
                    projection.apply(tx, pending)
                if page[-1][0] > position:
                    now = time.time()
                    tx.queue(partial(self._advance, name=projection.name, position=page[-1][0], now=now))
                    tokens[projection.name] = (page[-1][0], now)
                else:
                    tokens[projection.name] = (position, updated_at)
        except BaseException:
            tx.rollback()
            raise
        self._in_flight.append(_InFlight(tx.commit(), tokens, len(page)))
        self._predicted = tokens

    def _check_tracking(self, expected: Tokens, tx: Tx) -> None:
        tracked = self._lock_tracking(tx)
        for name, token in expected.items():
            found = tracked.get(name)
            if found is None or (found[0], found[2]) != token:
                raise Superseded(f"{name}'s tracking row moved: {found} instead of {token}")

    def _settle(self, keep: int = 0) -> bool:
        """Wait for the pages in flight but the last `keep`. False if one of them failed:
        then every page in flight has ended, and memory and predictions are dropped."""
        while len(self._in_flight) > keep:
            flight = self._in_flight.pop(0)
            error = flight.done.exception()
            if error is not None:
                for later in self._in_flight:
                    later.done.exception()
                self._in_flight.clear()
                self._recover()
                if not isinstance(error, Superseded):
                    log.warning("a pipelined page failed (%s); going on page by page", error)
                return False
            self._committed.update(flight.tokens)
            self._applied += flight.events
            for name, (position, _) in flight.tokens.items():
                PROJECTED.labels(projection=name).set(position)
        return True

    def _recover(self) -> None:
        """Back to what is committed: drop memory, predictions and the writer's failure."""
        for projection in self._projections:
            _forget(projection)
        self._committed.clear()
        self._predicted = None
        if self._writer is not None:
            self._writer.reset()

    def _pending(self, name: str, page: LogPage, position: int) -> LogPage:
        """The events of `page` that `name` has yet to apply (after `position`, not skipped)."""
        skipped = self._skips.get(name)
        if page[0][0] > position and not skipped:
            return page
        return [(pos, e) for pos, e in page if pos > position and not (skipped and pos in skipped)]

    def _run_page_now(self) -> int:
        """Apply the next page in a transaction of its own.

        A failed projection is left where it is while the others go on. When a projection
        raises, the page is applied again event by event, so everything before the failing
        event is kept and the failure names its exact position.
        """
        statuses = self.statuses()
        if self._first_page:
            # A new runner (a restart, a deploy) tries failed projections once more.
            self._retrying.update(s.name for s in statuses if s.state == "failed")
            self._first_page = False
        retrying, self._retrying = self._retrying, set()
        healthy = [s for s in statuses if s.state != "failed" or s.name in retrying]
        if not healthy:
            return 0
        page = self._read_page(min(s.position for s in healthy))
        if not page:
            return 0
        self._apply_around_failures(page, retrying)
        return len(page)

    def _apply_around_failures(self, page: LogPage, retrying: set[str]) -> None:
        """Apply `page` in one transaction; if a projection fails in it, apply each half of
        it the same way, in log order, down to the failing event, which is applied alone
        (that records the failure). A failure in a page of n events costs about 2·log2(n)
        transactions, not n; and a failure no single event reproduces (one that only a big
        page meets) ends with the page applied in smaller ones."""
        try:
            self._apply(page, retrying)
        except ProjectionFailed:
            if len(page) == 1:
                self._apply_alone(page[0], retrying)
                return
            middle = len(page) // 2
            self._apply_around_failures(page[:middle], retrying)
            self._apply_around_failures(page[middle:], retrying)
            return
        self._applied += len(page)
        for name in self.names:
            PROJECTED.labels(projection=name).set(page[-1][0])

    def _apply_alone(self, item: tuple[int, Any], retrying: set[str]) -> None:
        """Apply one event in a transaction of its own. A projection that fails on it is
        recorded, and the event is applied again to the others: its transaction took back
        what they had done with it."""
        for _ in range(len(self._projections) + 1):
            try:
                self._apply([item], retrying)
                return
            except ProjectionFailed as error:
                retrying.discard(error.name)
                self._fail(error)
                self._failed_now.append(error)
        raise RuntimeError(f"could not apply or record the failure of event {item[0]}")

    def _read_page(self, after: int) -> LogPage:
        """The page after `after`. While catching up (a full page came back), the next page is
        read and decoded in a thread while this one is applied: the log read then overlaps
        the database's work on the writes. A read-ahead page is only used if it starts where
        the runner is; events committed after it was read come with the page after it."""
        ahead, self._ahead = self._ahead, None
        page = ahead[1].result() if ahead is not None and ahead[0] == after else None
        if ahead is not None and page is None:
            ahead[1].cancel()
        if page is None:
            page = self._read_log(after, self._page_size)
        if len(page) == self._page_size and not self._stopping.is_set():
            if self._reader is None:
                self._reader = ThreadPoolExecutor(1, thread_name_prefix="projections-read-ahead")
            self._ahead = (page[-1][0], self._reader.submit(self._read_log, page[-1][0], self._page_size))
        return page

    def _apply(self, page: LogPage, retrying: set[str]) -> None:
        advanced: Tokens = {}
        healthy = True
        try:
            with self._store.transaction() as tx:
                tracked = self._lock_tracking(tx)
                for projection in self._projections:
                    position, state, updated_at = tracked[projection.name]
                    if self._committed.get(projection.name) != (position, updated_at):
                        _forget(projection)
                    if state == "failed" and projection.name not in retrying:
                        healthy = False
                        advanced[projection.name] = (position, updated_at)
                        continue
                    pending = self._pending(projection.name, page, position)
                    if pending:
                        try:
                            projection.apply(tx, pending)
                        except self._transient:
                            raise
                        except Exception as error:
                            exact = pending[0][0] if len(pending) == 1 else None
                            raise ProjectionFailed(projection.name, exact, error) from error
                    if page[-1][0] > position:
                        advanced[projection.name] = self._advance(tx, projection.name, page[-1][0])
                    else:
                        advanced[projection.name] = (position, updated_at)
        except BaseException:
            self._recover()
            raise
        self._committed.update(advanced)
        # Healthy projections all known: the next pages can be pipelined on top of these rows.
        self._predicted = advanced if healthy and set(advanced) == set(self.names) else None

    @staticmethod
    def _advance(tx: Tx, name: str, position: int, now: float | None = None) -> tuple[int, float]:
        now = time.time() if now is None else now
        tx.execute(
            "UPDATE projection_tracking SET position = ?, error = NULL, failed_position = NULL,"
            " state = CASE WHEN state = 'failed' THEN 'live' ELSE state END, updated_at = ? WHERE name = ?",
            (position, now, name),
        )
        return position, now

    def retry_failed(self) -> None:
        """Give failed projections another try on the next page (after a fix is deployed)."""
        self._retrying.update(s.name for s in self.statuses() if s.state == "failed")

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
            tx.execute("INSERT INTO projection_skips (name, position) VALUES (?, ?)", (name, position))
            tx.execute(
                "UPDATE projection_tracking SET state = 'live', error = NULL, failed_position = NULL,"
                " updated_at = ? WHERE name = ?",
                (time.time(), name),
            )
        self._skips.setdefault(name, set()).add(position)
        self.failure = None

    def catch_up(self, on_page: Callable[[], None] | None = None) -> int:
        """Apply pages until the log is exhausted; how many events were applied. A projection
        that fails is recorded and left behind while the others finish; the first such failure
        is raised at the end. `on_page` is called after each page (one may still be in flight)."""
        self._failed_now.clear()
        self._applied = 0
        try:
            while True:
                while self._step():
                    if on_page is not None:
                        on_page()
                if self._settle():
                    break
        finally:
            self._settle()
        if self._failed_now:
            raise self._failed_now[0]
        return self._applied

    def _lock_tracking(self, tx: Tx) -> dict[str, tuple[int, str, float]]:
        # FOR UPDATE serialises runners of the same read models in several processes on
        # PostgreSQL (runners of other read models go on); SQLite's BEGIN IMMEDIATE already
        # holds the write lock.
        lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
        names = self.names
        if not names:
            return {}
        rows = tx.fetchall(
            "SELECT name, position, state, updated_at FROM projection_tracking"
            f" WHERE name IN ({', '.join('?' * len(names))}){lock}",
            names,
        )
        return {r[0]: (int(r[1]), r[2], float(r[3])) for r in rows}

    # --- background loop -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
        self.close()

    def close(self) -> None:
        """Let go of the read-ahead and write-behind threads (a runner driven by catch_up()
        alone calls this)."""
        self._ahead = None
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)
            self._reader = None
        self._settle()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._predicted = None

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
                pass  # recorded; the others went on and this one waits for a fix or a skip
            except Exception as error:
                self._fail(error)
                return
            self._wakeup.wait(self._poll_s)
            self._wakeup.clear()

    def _fail(self, error: Exception) -> None:
        """Record the failure where admins see it; the runner stops and never skips ahead."""
        self.failure = error
        self._predicted = None
        log.exception("projection runner stopped: it will not skip the failing event")
        if isinstance(error, ProjectionFailed):
            FAILURES.labels(projection=error.name).inc()
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
