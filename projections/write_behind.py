"""Write-behind for the projection runner: a page's SQL runs on a thread of its own.

While the database works on page N (its rows, its indexes, its commit), the runner folds page
N+1 in Python. Each page is still one transaction, committed in log order. A projection
writes and reads through a `QueuedTx`, which hands every call to the writer thread in order:
a write returns at once, a read waits for its answer. A read therefore sees exactly what it
would in a synchronous transaction: everything the page wrote before it, on top of every page
committed before.

A page fails as a whole, and so does every page queued behind it (each was computed on the
state its predecessor would have left). The runner learns of a failure from the page's
`done` future, takes everything back to what is committed, and carries on from there.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from application.ports import ReadStore, Row, Tx

Step = Callable[[Tx], Any]


class Superseded(Exception):
    """A page computed on a state that is not what the tables hold: an earlier page failed,
    or another runner (a rebuild swap, an operator's skip) moved the tracking rows."""


class RolledBack(Exception):
    """The runner abandoned a page before committing it."""


_COMMIT, _ROLLBACK = object(), object()


class QueuedTx:
    """The Tx of one pipelined page: calls go to the writer thread, in order."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.done: Future[None] = Future()
        self._steps: queue.SimpleQueue[Any] = queue.SimpleQueue()

    # --- what projections call ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._steps.put(lambda tx: tx.execute(sql, params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = list(rows)
        self._steps.put(lambda tx: tx.executemany(sql, rows))

    def append_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        self._steps.put(lambda tx: tx.append_rows(table, columns, rows))

    def upsert_rows(
        self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        rows = list(rows)
        self._steps.put(lambda tx: tx.upsert_rows(table, columns, key, rows))

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        found: Row | None = self.call(lambda tx: tx.fetchone(sql, params))
        return found

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        found: list[Row] = self.call(lambda tx: tx.fetchall(sql, params))
        return found

    # --- what the runner calls ----------------------------------------------------------------

    def queue(self, step: Step) -> None:
        """Run `step(tx)` in the page's transaction; its error fails the page."""
        self._steps.put(step)

    def call(self, step: Step) -> Any:
        """Run `step(tx)` in the page's transaction and wait for what it returns."""
        answer: Future[Any] = Future()
        self._steps.put((step, answer))
        return answer.result()

    def commit(self) -> Future[None]:
        self._steps.put(_COMMIT)
        return self.done

    def rollback(self) -> None:
        self._steps.put(_ROLLBACK)

    # --- what the writer thread does ------------------------------------------------------------

    def _run(self, store: ReadStore) -> None:
        ended = False  # whether the runner's last step (commit or rollback) was taken off the queue
        try:
            with store.transaction() as tx:
                while (step := self._steps.get()) is not _COMMIT:
                    if step is _ROLLBACK:
                        ended = True
                        raise RolledBack
                    if isinstance(step, tuple):
                        call, answer = step
                        try:
                            answer.set_result(call(tx))
                        except BaseException as error:
                            answer.set_exception(error)
                            raise
                    else:
                        step(tx)
                ended = True  # the commit itself (leaving the block) may still fail
        except BaseException as error:
            self._fail(error, ended=ended)
        else:
            self.done.set_result(None)

    def _fail(self, error: BaseException, *, ended: bool) -> None:
        """Fail the page, and what is still queued in it, until the runner ends it (at once
        when it has: no step of the page is left to come)."""
        self.done.set_exception(error)
        while not ended:
            step = self._steps.get()
            if isinstance(step, tuple):
                step[1].set_exception(error)
            ended = step is _COMMIT or step is _ROLLBACK


_RESET = object()
_STOP = object()


class WriteBehind:
    """One thread applying queued pages in order, a transaction each. After a page fails,
    the pages queued behind it fail as Superseded until `reset()`."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store
        self._pages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="projections-write-behind", daemon=True)
        self._thread.start()

    def begin(self) -> QueuedTx:
        page = QueuedTx(self._store.dialect)
        self._pages.put(page)
        return page

    def reset(self) -> None:
        """Accept pages again after a failure (the runner has settled every page before)."""
        self._pages.put(_RESET)

    def close(self, timeout: float = 5.0) -> None:
        self._pages.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        failed = False
        while (page := self._pages.get()) is not _STOP:
            if page is _RESET:
                failed = False
            elif failed:
                page._fail(Superseded("a page before it failed"), ended=False)
            else:
                page._run(self._store)
                failed = page.done.exception() is not None
