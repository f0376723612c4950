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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from application.ports import ReadStore, Tx
from projections.failures import FAILURES, NotSkippable, ProjectionFailed, Skips, apply_around_failures
from projections.pages import NO_ERRORS_TEMPORARY, PageApplier, StoreErrors
from projections.projection import LogPage, Projection, ReadLog, announce_commit
from projections.tracking import (
    ProjectionStatus,
    create_tracking,
    mark_skipped,
    read_statuses,
    record_failure,
)

log = logging.getLogger(__name__)

# Longest pause between two attempts while the store is unavailable: the first attempt after
# it is back finds it at most this late.
RETRY_AT_MOST_S = 5.0

LoopState = Literal["not started", "running", "retrying", "stopped"]


@dataclass(frozen=True)
class Activity:
    """What a runner's background loop is doing, as health checks tell it."""

    state: LoopState
    since: float  # epoch seconds: when the loop entered `state`
    error: str | None  # the class of the error it retries on, or stopped on
    advanced_at: float  # epoch seconds: its last page committed, or the last time it found none
    patience_s: float  # how long it may go without either before it is not advancing

    @property
    def advancing(self) -> bool:
        """Its loop runs, and committed a page (or found nothing to apply) within patience_s."""
        return self.state in ("running", "retrying") and time.time() - self.advanced_at <= self.patience_s

    def keeps_up(self, behind: bool) -> bool:
        """Its loop runs, and advances while read models are `behind` the log."""
        return self.state in ("running", "retrying") and (self.advancing or not behind)

    def report(self) -> dict[str, Any]:
        """State, since when (RFC 3339), the error's class, and whether it is advancing."""
        since = datetime.fromtimestamp(self.since, UTC).isoformat().replace("+00:00", "Z")
        return {"state": self.state, "since": since, "error": self.error, "advancing": self.advancing}


class ProjectionRunner:
    """Applies the log to a set of read models: page by page on demand (`catch_up`), or in a
    background loop (`start`) woken by writes and a poll."""

    def __init__(
        self,
        read_log: ReadLog,
        store: ReadStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 5000,
        poll_s: float = 0.5,
        errors: StoreErrors = NO_ERRORS_TEMPORARY,
        skips: dict[str, set[int]] | None = None,
        stall_s: float = 30.0,
    ) -> None:
        """`errors` tells which of the store's errors are temporary (a database restarting:
        retried after a pause) and which are statements over the time limit (the pages are
        made smaller); any other error stops the read model that met it at its event, or,
        met by no read model, the runner. A loop that commits nothing for `stall_s` (and a
        poll) while read models are behind is reported as not advancing."""
        self._store = store
        self._pages = PageApplier(
            read_log, store, projections, Skips(skips), page_size=page_size, errors=errors
        )
        self._errors = errors
        self._poll_s = poll_s
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self._retrying: set[str] = set()
        self._first_page = True
        self._failed_now: list[ProjectionFailed] = []
        self._patience_s = stall_s + poll_s
        self._state: tuple[LoopState, float, str | None] = ("not started", time.time(), None)
        self._idle_at = 0.0  # epoch seconds: the last time it had applied everything there was

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
        """Create the tracking rows and the read models' tables (where they are missing)."""
        with self._store.transaction() as tx:
            create_tracking(tx, self.names)
            for projection in self._pages.projections:
                projection.create_tables(tx)

    def statuses(self) -> list[ProjectionStatus]:
        """The read models' tracking rows, as committed."""
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
                try:
                    while self._step():
                        if on_page is not None:
                            on_page()
                except Exception as error:
                    if self._errors.cancelled(error) and self._pages.shrink():
                        continue  # the same events again, in smaller pages
                    raise
                if self._pages.settle():
                    self._idle_at = time.time()  # nothing left to apply, nothing in flight
                    # What acting on a commit could not do then is tried again, page or not.
                    announce_commit(self._pages.projections)
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
        try:
            return self._apply_next_page(statuses, retrying)
        except BaseException:
            # Not tried (the log or the store failed first): tried on the next attempt. Those
            # that failed again were taken out of `retrying` as their failure was recorded.
            self._retrying |= retrying
            raise

    def _apply_next_page(self, statuses: list[ProjectionStatus], retrying: set[str]) -> int:
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

    def activity(self) -> Activity:
        """What the background loop is doing (from any thread)."""
        state, since, error = self._state
        if state in ("running", "retrying") and not self.running:
            state = "stopped"  # its thread ended without saying so
        advanced_at = max(since if state == "running" else 0.0, self._pages.committed_at, self._idle_at)
        return Activity(state, since, error, advanced_at, self._patience_s)

    def wake(self, _position: int | None = None) -> None:
        """New events may be in the log (a save here, or a NOTIFY)."""
        self._wakeup.set()

    def start(self) -> None:
        """Run the background loop in a thread of its own."""
        self._thread = threading.Thread(target=self._loop, name="projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background loop, waiting at most `timeout` for the page it is on. A loop
        still busy then (on a database that does not answer) is left to end with the process:
        its page is a transaction, and what it did not commit is not applied."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "the projection runner is still on a page after %.0fs; not waiting for it", timeout
                )
                return
        self.close()

    def close(self) -> None:
        """Let go of the read-ahead and write-behind threads (a runner driven by catch_up()
        alone calls this)."""
        self._pages.close()

    def run_forever(self) -> None:
        self._loop()

    def _loop(self) -> None:
        self._enter("running")
        try:
            self._run_until_stopped()
        except Exception as error:
            self._enter("stopped", error)
            self._fail(error)
        else:
            self._enter("stopped")

    def _run_until_stopped(self) -> None:
        """Catch up, then wait for a wake-up or the poll interval, until stopped. Temporary
        errors, and statements over the time limit in pages as small as they get, are retried
        with a pause that doubles up to RETRY_AT_MOST_S; other errors end the loop (a failed
        read model does not: it is recorded, and the others go on)."""
        backoff = self._poll_s
        while not self._stopping.is_set():
            try:
                self.catch_up()
            except ProjectionFailed:
                pass  # recorded; the others went on and this one waits for a fix or a skip
            except Exception as error:
                if not (self._errors.temporary(error) or self._errors.cancelled(error)):
                    raise
                self._enter("retrying", error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, RETRY_AT_MOST_S)
                continue
            self._enter("running")
            backoff = self._poll_s
            self._wakeup.wait(self._poll_s)
            self._wakeup.clear()

    def _enter(self, state: LoopState, error: BaseException | None = None) -> None:
        """Say what the loop does now; a state it is already in keeps its start."""
        current, since, _ = self._state
        if state == current and state != "retrying":
            return
        if state == "retrying" and current != "retrying":
            log.warning("projections paused on %s (%s); retrying", type(error).__name__, error)
        elif current == "retrying" and state == "running":
            log.warning("projections resumed after %.1fs", time.time() - since)
        started = since if state == current else time.time()
        self._state = (state, started, None if error is None else type(error).__name__)

    def _fail(self, error: Exception) -> None:
        """Record the failure where admins see it; the read model (or, for an error of no read
        model, the loop) stops there and never skips ahead."""
        self.failure = error
        self._pages.predicted = None
        if isinstance(error, ProjectionFailed):
            log.exception("read model %s stopped: it will not skip the failing event", error.name)
            FAILURES.labels(projection=error.name).inc()
            names, cause, position = [error.name], error.cause, error.position
        else:
            log.exception("projection runner stopped: it will not skip the failing event")
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
