"""Applying pages of the log to read models, each in one transaction with their tracking rows:
at once (`PageApplier.apply`), or pipelined on the write-behind thread (`submit`).

While all its read models are healthy, the runner pipelines: a page's SQL runs on the
write-behind thread (see `projections.write_behind`) while the next page is folded, on top of
the tracking rows the page in flight will leave. Each page checks, under the tracking lock,
that the rows are exactly those; if not, or if a page fails, everything goes back to what is
committed (`recover`) and the runner carries on page by page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from prometheus_client import Gauge

from application.ports import ReadStore, Tx
from projections.failures import ProjectionFailed, Skips
from projections.projection import LogPage, Projection, ReadLog, announce_commit, forget, own_copy
from projections.tracking import LockedRows, TrackingRows, advance, lock_tracking, skips_in
from projections.write_behind import Superseded, WriteBehind

log = logging.getLogger(__name__)

PROJECTED = Gauge(
    "a2a_projection_position",
    "Last log position applied, per read model.",
    ["projection"],
    multiprocess_mode="max",
)

# A page cancelled for running past the statement limit is halved, down to this fraction of
# the configured size (40,000 -> 625: at most six halvings). Below it the page's size is not
# the cause: a read model whose statement is still cancelled fails at its event, and a log
# read or a lock wait still cancelled is retried as a temporary error is.
SMALLEST_PAGE_FRACTION = 64
# Full pages that fit in a row at a reduced size before it doubles again (towards the
# configured size): while the doubled size still does not fit, one page in five is cancelled.
GROW_AFTER_PAGES = 4


def _never(_error: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class StoreErrors:
    """How a runner tells the store's errors apart (the infrastructure decides which is which)."""

    # The store cannot serve the page now and the same page may succeed later (a lost
    # connection, no connection in time): retried, never taken for a failing event.
    temporary: Callable[[BaseException], bool] = _never
    # A statement ran past the statement time limit: the page is made smaller.
    cancelled: Callable[[BaseException], bool] = _never


# Every error is the page's: what a runner that is told nothing about its store assumes.
NO_ERRORS_TEMPORARY = StoreErrors()


@dataclass
class _InFlight:
    """A page queued on the write-behind thread, and the tracking rows it leaves."""

    done: Future[None]
    rows: TrackingRows
    events: int


class PageApplier:
    """Applies pages of the log to a runner's read models (copies of their own, whose memory
    it keeps or drops), and reads the log for them."""

    def __init__(
        self,
        read_log: ReadLog,
        store: ReadStore,
        projections: Sequence[Projection],
        skips: Skips,
        *,
        page_size: int,
        errors: StoreErrors,
    ) -> None:
        self._read_log = read_log
        self._store = store
        self.projections = [own_copy(p) for p in projections]
        self.names = [p.name for p in self.projections]
        self.skips = skips
        self.errors = errors
        # Most events a page holds now: the configured size, or less after statements ran
        # past the time limit (`shrink`), growing back as full pages fit.
        self.page_size = self.largest_page = page_size
        self.smallest_page = max(1, page_size // SMALLEST_PAGE_FRACTION)
        self._fitted = 0  # full pages applied in a row at the current, reduced size
        # (position, updated_at) of the tracking rows as this runner last committed them: a
        # projection's memory is trusted only while its row still says exactly that.
        self.committed: TrackingRows = {}
        # The tracking rows as they will be once the pages in flight commit; None when
        # pipelining is off (a projection failed, or nothing is known yet).
        self.predicted: TrackingRows | None = None
        self.applied = 0  # events, since the caller last set it to 0
        self.committed_at = 0.0  # epoch seconds of the last page committed
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future[LogPage]] | None = None
        self._writer: WriteBehind | None = None
        self._in_flight: list[_InFlight] = []

    def read(self, after: int, *, ahead: bool = True) -> LogPage:
        """The page after `after`. While catching up (a full page came back), the next page is
        read and decoded in a thread while this one is applied: the log read then overlaps
        the database's work on the writes."""
        previous, self._ahead = self._ahead, None
        # A page read ahead is still the page after its start: positions commit in log order,
        # so none appears later below one already read (events since come with the next page).
        page = previous[1].result() if previous is not None and previous[0] == after else None
        if previous is not None and page is None:
            previous[1].cancel()
        if page is None:
            page = self._read_log(after, self.page_size)
        if len(page) == self.page_size and ahead:
            if self._reader is None:
                self._reader = ThreadPoolExecutor(1, thread_name_prefix="projections-read-ahead")
            self._ahead = (page[-1][0], self._reader.submit(self._read_log, page[-1][0], self.page_size))
        return page

    def apply(self, page: LogPage, after: int, retrying: set[str]) -> None:
        """Apply `page`, read after position `after`, in a transaction of its own, to every
        read model but those that failed (and are not in `retrying`); ProjectionFailed if one
        raises."""
        advanced: TrackingRows = {}
        healthy = True
        try:
            with self._store.transaction() as tx:
                locked = lock_tracking(tx, self.names)
                applying = {n for n, (_, state, _) in locked.items() if state != "failed" or n in retrying}
                page = self._under_lock(tx, locked, applying, page, after)
                for projection in self.projections:
                    position, _, updated_at = locked[projection.name]
                    # Memory is trusted only while the row is what this runner committed last.
                    if self.committed.get(projection.name) != (position, updated_at):
                        forget(projection)
                    if projection.name not in applying:
                        healthy = False
                        advanced[projection.name] = (position, updated_at)
                        continue
                    pending = self.skips.pending(projection.name, page, position)
                    if pending:
                        self._apply_one(projection, tx, pending)
                    if page[-1][0] > position:
                        advanced[projection.name] = advance(tx, projection.name, page[-1][0])
                    else:
                        advanced[projection.name] = (position, updated_at)
        except BaseException:
            self.recover()
            raise
        self._committed(advanced, len(page))
        # Healthy projections all known: the next pages can be pipelined on top of these rows.
        self.predicted = advanced if healthy and set(advanced) == set(self.names) else None

    def _under_lock(
        self, tx: Tx, locked: LockedRows, applying: set[str], page: LogPage, after: int
    ) -> LogPage:
        """What changed since the page was chosen, from the rows as locked: the skips when a
        row is not the one this runner left (an operator's skip moves it, in any process),
        and the page itself when a read model it is for stands before `after`."""
        if any(self.committed.get(n) != (p, at) for n, (p, _, at) in locked.items()):
            self.skips.add(skips_in(tx))
        back = min((locked[n][0] for n in applying), default=after)
        if back < after:
            # A position moved back (a rebuild swapped in): read from there, or what lies
            # between is never applied while the tracking row goes past it.
            return self._read_log(back, len(page))
        return page

    def _apply_one(self, projection: Projection, tx: Tx, pending: LogPage) -> None:
        try:
            projection.apply(tx, pending)
        except Exception as error:
            if self.errors.temporary(error):
                raise  # the store's, not the read model's: retried as it is
            if self.errors.cancelled(error) and len(pending) > self.smallest_page:
                raise  # a page too big for the time limit: made smaller before anything is blamed
            exact = pending[0][0] if len(pending) == 1 else None
            raise ProjectionFailed(projection.name, exact, error) from error

    def shrink(self) -> bool:
        """Halve the page size (not below `smallest_page`), after a statement ran past the
        time limit; False when it is at its smallest already."""
        if self.page_size <= self.smallest_page:
            return False
        self.page_size = max(self.smallest_page, self.page_size // 2)
        self._fitted = 0
        if self._ahead is not None:  # read at the old size, or the read that was cancelled
            self._ahead[1].cancel()
            self._ahead = None
        log.warning("a statement ran past the time limit: pages of at most %d events now", self.page_size)
        return True

    def _fitted_page(self, events: int) -> None:
        """A page of `events` committed: after GROW_AFTER_PAGES full ones in a row at a
        reduced size, double it again (towards the configured size)."""
        if self.page_size == self.largest_page or events < self.page_size:
            return
        self._fitted += 1
        if self._fitted >= GROW_AFTER_PAGES:
            self.page_size = min(self.largest_page, self.page_size * 2)
            self._fitted = 0
            log.info("pages of at most %d events again", self.page_size)

    def submit(self, page: LogPage) -> None:
        """Fold `page` on top of the tracking rows the pages in flight will leave, and queue
        its writes behind theirs."""
        expected = self.predicted
        assert expected is not None, "pipelining needs the rows the pages in flight leave"
        if self._writer is None:
            self._writer = WriteBehind(self._store)
        tx = self._writer.begin()
        # Folded on predicted rows: the page fails, Superseded, unless they are what it finds.
        tx.queue(partial(self._check_tracking, expected))
        rows: TrackingRows = {}
        try:
            for projection in self.projections:
                position, updated_at = expected[projection.name]
                pending = self.skips.pending(projection.name, page, position)
                if pending:
                    projection.apply(tx, pending)
                if page[-1][0] > position:
                    now = time.time()
                    tx.queue(partial(advance, name=projection.name, position=page[-1][0], now=now))
                    rows[projection.name] = (page[-1][0], now)
                else:
                    rows[projection.name] = (position, updated_at)
        except BaseException:
            tx.rollback()
            raise
        self._in_flight.append(_InFlight(tx.commit(), rows, len(page)))
        self.predicted = rows

    def _check_tracking(self, expected: TrackingRows, tx: Tx) -> None:
        locked = lock_tracking(tx, self.names)
        for name, row in expected.items():
            found = locked.get(name)
            if found is None or (found[0], found[2]) != row:
                raise Superseded(f"{name}'s tracking row moved: {found} instead of {row}")

    def settle(self, keep: int = 0) -> bool:
        """Wait for the pages in flight but the last `keep`. False if one of them failed:
        then every page in flight has ended, and memory and predictions are dropped."""
        while len(self._in_flight) > keep:
            flight = self._in_flight.pop(0)
            error = flight.done.exception()
            if error is not None:
                for later in self._in_flight:
                    later.done.exception()
                self._in_flight.clear()
                self.recover()
                if not isinstance(error, Superseded):
                    log.warning("a pipelined page failed (%s); going on page by page", error)
                if self.errors.cancelled(error):
                    self.shrink()  # the page by page that follows starts smaller
                return False
            self._committed(flight.rows, flight.events)
        return True

    def _committed(self, rows: TrackingRows, events: int) -> None:
        self.committed.update(rows)
        self.applied += events
        self.committed_at = time.time()
        self._fitted_page(events)
        for name, (position, _) in rows.items():
            PROJECTED.labels(projection=name).set(position)
        announce_commit(self.projections)

    def recover(self) -> None:
        """Back to what is committed: drop memory, predictions and the writer's failure."""
        for projection in self.projections:
            forget(projection)
        self.committed.clear()
        self.predicted = None
        if self._writer is not None:
            self._writer.reset()

    def close(self) -> None:
        """Let go of the read-ahead and write-behind threads, once the pages in flight ended."""
        self._ahead = None
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)
            self._reader = None
        self.settle()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.predicted = None
