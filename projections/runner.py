"""Feeds read models from the notification log, a page per transaction, in a background loop.

Each page is applied to every projection and their tracking positions are written in the
same transaction, so an event is applied exactly once however the process dies. While all
read models are healthy, pages are pipelined (`projections.pages`). A projection that raises
stops where it is, at the exact event, and never skips it by itself; the others go on
(`projections.failures`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial

from application.ports import ReadStore, Tx
from projections.failures import FAILURES, NotSkippable, ProjectionFailed, Skips, apply_around_failures
from projections.pages import PageApplier
from projections.projection import LogPage, Projection, ReadLog
from projections.tracking import (
    TRACKING_DDL,
    ProjectionStatus,
    create_tracking,
    load_skips,
    mark_skipped,
    read_statuses,
    record_failure,
)

__all__ = [
    "TRACKING_DDL",
    "LogPage",
    "NotSkippable",
    "Projection",
    "ProjectionFailed",
    "ProjectionRunner",
    "ProjectionStatus",
    "ReadLog",
    "load_skips",
]

log = logging.getLogger(__name__)


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
        self._store = store
        self._pages = PageApplier(
            read_log, store, projections, Skips(skips), page_size=page_size, transient=transient
        )
        self._poll_s = poll_s
        self._transient = transient
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self._retrying: set[str] = set()
        self._first_page = True
        self._failed_now: list[ProjectionFailed] = []

    @property
    def names(self) -> list[str]:
        return list(self._pages.names)

    @property
    def projections(self) -> list[Projection]:
        return list(self._pages.projections)

    @property
    def reached(self) -> int:
        """The lowest position the projections have reached, counting the page in flight
        (for progress reports; statuses() tells what is committed)."""
        rows = self._pages.predicted or self._pages.committed
        return min((position for position, _ in rows.values()), default=0)

    def setup(self) -> None:
        with self._store.transaction() as tx:
            create_tracking(tx, self.names)
            for projection in self._pages.projections:
                projection.create_tables(tx)

    def statuses(self) -> list[ProjectionStatus]:
        return read_statuses(self._store, self.names)

    def run_page(self) -> int:
        """Apply the next page of the log and wait for its commit; returns how many events it
        held (0: caught up)."""
        try:
            return self._step()
        finally:
            self._pages.settle()

    def catch_up(self, on_page: Callable[[], None] | None = None) -> int:
        """Apply pages until the log is exhausted; how many events were applied. A projection
        that fails is recorded and left behind while the others finish; the first such failure
        is raised at the end. `on_page` is called after each page (one may still be in flight)."""
        self._failed_now.clear()
        self._pages.applied = 0
        try:
            while True:
                while self._step():
                    if on_page is not None:
                        on_page()
                if self._pages.settle():
                    break
        finally:
            self._pages.settle()
        if self._failed_now:
            raise self._failed_now[0]
        return self._pages.applied

    def _step(self) -> int:
        """Apply the next page, or queue it behind the one in flight; how many events it held.

        Pipelining needs every projection healthy; otherwise (and after anything went
        wrong) the page is applied here, in a transaction of its own.
        """
        pages = self._pages
        if pages.predicted is None or self._retrying or self._stopping.is_set():
            pages.settle()
            return self._run_page_now()
        page = self._read(min(position for position, _ in pages.predicted.values()))
        if not page:
            return 0
        try:
            pages.submit(page)
        except Exception:
            # A projection raised while folding (or a read it made failed): from what is
            # committed, page by page, to find the exact event.
            pages.settle()
            pages.recover()
            return self._run_page_now()
        pages.settle(keep=1)
        return len(page)

    def _run_page_now(self) -> int:
        """Apply the next page in a transaction of its own.

        A failed projection is left where it is while the others go on. When a projection
        raises, the event it fails on is found (`apply_around_failures`), everything before
        it is kept, and the failure names its exact position.
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
        after = min(s.position for s in healthy)  # chosen without the lock: apply() checks it under it
        page = self._read(after)
        if not page:
            return 0
        apply = partial(self._pages.apply, retrying=retrying)
        apply_around_failures(apply, page, after, partial(self._failed, retrying), len(self.names))
        return len(page)

    def _read(self, after: int) -> LogPage:
        return self._pages.read(after, ahead=not self._stopping.is_set())

    def _failed(self, retrying: set[str], error: ProjectionFailed) -> None:
        retrying.discard(error.name)
        self._fail(error)
        self._failed_now.append(error)

    # --- what operators do ---------------------------------------------------------------

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
        which the caller records in the log). The other projections still apply that event.
        Every runner of `name` learns of it from the store, in this process or another."""
        with self._store.transaction() as tx:
            self.skip_check(name, position, tx)
            mark_skipped(tx, name, position)
        self.failure = None

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
        self._pages.close()

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
        self._pages.predicted = None
        log.exception("projection runner stopped: it will not skip the failing event")
        if isinstance(error, ProjectionFailed):
            FAILURES.labels(projection=error.name).inc()
            names, cause, position = [error.name], error.cause, error.position
        else:
            names, cause, position = self.names, error, None
        try:
            with self._store.transaction() as tx:
                record_failure(tx, names, f"{type(cause).__name__}: {cause}", position)
        except Exception:
            log.exception("could not record the projection failure")

    def resume(self) -> None:
        """Start the background loop again after a failure was fixed or skipped."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self.failure = None
            self.start()
