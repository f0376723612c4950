"""Writes security denials to their table on a thread of its own, in batches.

Whoever records a denial (a request refused on the event loop, the token endpoint) only hands
the row over: a busy or failing store never holds a request. Rows wait in a bounded buffer; if
the store falls that far behind, the newest are dropped and counted, never queued without end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from application.ports import ReadStore

log = logging.getLogger("a2a_goals.security")

UNSTORED = Counter(
    "a2a_security_denials_unstored_total",
    "Denials logged but not stored: the buffer was full or the store refused the write.",
)
INSERT = (
    "INSERT INTO security_events (at, kind, client_id, tenant, request_id, detail) VALUES (?, ?, ?, ?, ?, ?)"
)
TRIM = (
    "DELETE FROM security_events WHERE at < (SELECT MIN(at) FROM (SELECT at FROM"
    " security_events ORDER BY at DESC LIMIT ?) AS newest)"
)
# After a failed write the writer waits this long before the next, so a store that is down is
# not asked again for every denial.
RETRY_AFTER_FAILURE_S = 1.0
Row = tuple[Any, ...]


class DenialWriter:
    """Buffers denial rows and writes them in one transaction per batch; keeps the table to
    the newest `keep_rows` (trimmed every `trim_every` rows written)."""

    def __init__(
        self, store: ReadStore, *, buffered: int = 10_000, keep_rows: int = 10_000, trim_every: int = 1000
    ) -> None:
        self._store = store
        self._buffered = buffered
        self._keep_rows = keep_rows
        self._trim_every = trim_every
        self._rows: list[Row] = []
        self._changed = threading.Condition()
        self._handed = 0  # rows handed over, since the start
        self._settled = 0  # rows written or given up, since the start
        self._written = 0
        self._closing = False
        self._closed = threading.Event()  # what a writer backing off from a failure waits on
        self._thread: threading.Thread | None = None
        self._dropping = False  # a drop has been logged since the last row was kept

    def submit(self, row: Row) -> None:
        """Hand a row over; returns at once (the row is dropped, and counted, when the buffer
        is full)."""
        with self._changed:
            if self._closing or len(self._rows) >= self._buffered:
                UNSTORED.inc()
                if not self._dropping:
                    self._dropping = True
                    log.warning("security denials are not stored: %d await the store", len(self._rows))
                return
            self._dropping = False
            self._rows.append(row)
            self._handed += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="security-denials", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until every row handed over so far is written or given
        up; whether that happened in time."""
        with self._changed:
            target = self._handed
            return self._changed.wait_for(lambda: self._settled >= target, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is buffered (waiting at most `timeout_s`) and stop the thread."""
        with self._changed:
            self._closing = True
            self._closed.set()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._rows) or self._closing)
                if not self._rows:
                    return
                batch, self._rows = self._rows, []
            written = self._write(batch)
            with self._changed:
                self._settled += len(batch)
                self._changed.notify_all()
            if not written:
                self._closed.wait(RETRY_AFTER_FAILURE_S)  # new rows gather meanwhile, bounded

    def _write(self, batch: Sequence[Row]) -> bool:
        try:
            with self._store.transaction() as tx:
                tx.executemany(INSERT, batch)
                trim = self._written // self._trim_every != (self._written + len(batch)) // self._trim_every
                if trim:
                    tx.execute(TRIM, (self._keep_rows,))
        # This thread is the only writer of denials: whatever the store raises, it must live
        # on. The rows' log lines were written when they were recorded; the rows are counted.
        except Exception:
            UNSTORED.inc(len(batch))
            log.warning("%d security denials could not be stored", len(batch), exc_info=True)
            return False
        self._written += len(batch)
        return True
