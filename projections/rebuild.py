"""Rebuild read models from the log without readers ever seeing a half-built one.

A rebuild replays the whole log into shadow tables (a separate SQLite file, or a separate
PostgreSQL schema) with the same page-per-transaction runner, then swaps them in and sets
the live tracking positions in one transaction. The live runner then applies whatever was
written after the shadow's position. An interrupted rebuild resumes from the shadow's own
tracking position.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from application.ports import ReadStore
from projections.runner import Projection, ProjectionRunner, ReadLog, load_skips

Progress = Callable[[int, int], None]  # (position reached, log end)


@dataclass(frozen=True)
class RebuildResult:
    names: tuple[str, ...]
    events: int
    seconds: float
    position: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Rebuilder:
    def __init__(
        self,
        read_log: ReadLog,
        log_end: Callable[[], int],
        store: ReadStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 5000,
    ) -> None:
        self._read_log = read_log
        self._log_end = log_end
        self._store = store
        self._projections = {p.name: p for p in projections}
        self._page_size = page_size

    @property
    def names(self) -> list[str]:
        return list(self._projections)

    def rebuild(
        self, names: Sequence[str], *, restart: bool = False, progress: Progress | None = None
    ) -> RebuildResult:
        """Rebuild the named read models (resuming an interrupted rebuild unless `restart`)."""
        unknown = sorted(set(names) - set(self._projections))
        if unknown or not names:
            raise KeyError(f"unknown projections {unknown}; known: {sorted(self._projections)}")
        chosen = [self._projections[n] for n in names]
        shadow = self._store.open_shadow()
        if restart:
            self._store.drop_shadow(shadow)
            shadow = self._store.open_shadow()
        self._mark(names, "rebuilding")
        try:
            runner = ProjectionRunner(
                self._read_log, shadow, chosen, page_size=self._page_size, skips=load_skips(self._store)
            )
            runner.setup()
            started, at_start = time.perf_counter(), _position(runner)
            report = None if progress is None else lambda: progress(runner.reached, self._log_end())
            try:
                runner.catch_up(on_page=report)
            finally:
                runner.close()
            reached = _position(runner)
            seconds = time.perf_counter() - started
            tables = [t for p in chosen for t in p.tables]
            self._store.swap_in(shadow, tables, {n: reached for n in names})
        except BaseException:
            self._mark(names, "live")
            shadow.close()
            raise
        self._store.drop_shadow(shadow)
        return RebuildResult(tuple(names), reached - at_start, seconds, reached)

    def _mark(self, names: Sequence[str], state: str) -> None:
        marks = ", ".join("?" * len(names))
        with self._store.transaction() as tx:
            tx.execute(
                f"UPDATE projection_tracking SET state = ? WHERE name IN ({marks}) AND state != 'failed'",
                (state, *names),
            )


def _position(runner: ProjectionRunner) -> int:
    return min((s.position for s in runner.statuses()), default=0)
