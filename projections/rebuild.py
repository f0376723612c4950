"""Rebuild read models from the log without readers ever seeing a half-built one.

A rebuild replays the whole log into shadow tables (a separate SQLite file, or a separate
PostgreSQL schema) with the same page-per-transaction runner, then swaps them in and sets
the live tracking positions in one transaction. The live runner then applies whatever was
written after the shadow's position. An interrupted rebuild resumes from the shadow's own
tracking position.

On PostgreSQL, several read models can be replayed in several processes at once (`jobs`),
each process a share of them into the same shadow schema, each with its own tracking rows; a
last pass brings them all to the same position before the swap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context

from application.ports import ReadStore
from projections.pages import NO_ERRORS_TEMPORARY, StoreErrors
from projections.projection import Projection, ReadLog, relocate
from projections.runner import ProjectionRunner
from projections.tracking import load_skips

Progress = Callable[[int, int], None]  # (position reached, log end)
# Replays the named read models into the shadow store, in the process it is called in (it is
# sent to another process: a module-level function, or a partial of one).
Replay = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class RebuildResult:
    names: tuple[str, ...]
    events: int
    seconds: float
    position: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class ClaimedRebuild:
    """A rebuild that holds its store's claim: `run` it (it lets go of the claim when it
    ends), or `release` the claim without running it."""

    def __init__(self, claim: ExitStack, rebuild: Callable[[], RebuildResult]) -> None:
        self._claim = claim
        self._rebuild = rebuild

    def run(self) -> RebuildResult:
        with self._claim:
            return self._rebuild()

    def release(self) -> None:
        self._claim.close()


class Rebuilder:
    def __init__(
        self,
        read_log: ReadLog,
        log_end: Callable[[], int],
        store: ReadStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 5000,
        jobs: int = 1,
        replay_elsewhere: Replay | None = None,
        errors: StoreErrors = NO_ERRORS_TEMPORARY,
    ) -> None:
        self._read_log = read_log
        self._log_end = log_end
        self._store = store
        self._projections = {p.name: p for p in projections}
        self._page_size = page_size
        self._jobs = jobs
        self._replay_elsewhere = replay_elsewhere
        self._errors = errors

    @property
    def names(self) -> list[str]:
        return list(self._projections)

    def rebuild(
        self,
        names: Sequence[str],
        *,
        restart: bool = False,
        progress: Progress | None = None,
        jobs: int | None = None,
    ) -> RebuildResult:
        """Rebuild the named read models (resuming an interrupted rebuild unless `restart`),
        replaying them in up to `jobs` processes (default: the rebuilder's) when the store
        allows it. One rebuild at a time per store: ShadowInUse while another one runs, in
        this process or another."""
        return self.claim(names, restart=restart, progress=progress, jobs=jobs).run()

    def claim(
        self,
        names: Sequence[str],
        *,
        restart: bool = False,
        progress: Progress | None = None,
        jobs: int | None = None,
    ) -> ClaimedRebuild:
        """The rebuild of `rebuild`, with the store's claim taken now (ShadowInUse at once
        while another rebuild holds it; KeyError for an unknown read model), to run later,
        in any thread."""
        unknown = sorted(set(names) - set(self._projections))
        if unknown or not names:
            raise KeyError(f"unknown projections {unknown}; known: {sorted(self._projections)}")
        held = ExitStack()
        held.enter_context(self._store.claim_shadow())  # ShadowInUse while another rebuild builds there
        return ClaimedRebuild(
            held, partial(self._rebuild, names, restart=restart, progress=progress, jobs=jobs)
        )

    def _rebuild(
        self, names: Sequence[str], *, restart: bool, progress: Progress | None, jobs: int | None
    ) -> RebuildResult:
        shadow = self._store.open_shadow()
        if restart:
            self._store.drop_shadow(shadow)
            shadow = self._store.open_shadow()
        self._mark(names, "rebuilding")
        try:
            runner = self._runner(shadow, names)
            runner.setup()
            started, at_start = time.perf_counter(), _position(runner)
            groups = self._groups(names, jobs or self._jobs)
            if len(groups) > 1:
                self._replay_in_processes(groups, runner, progress)
            report = None if progress is None else lambda: progress(runner.reached, self._log_end())
            try:
                runner.catch_up(on_page=report)  # everything, or what the processes left
            finally:
                runner.close()
            reached = _position(runner)
            seconds = time.perf_counter() - started
            tables = [t for n in names for t in self._projections[n].tables]
            self._store.swap_in(shadow, tables, {n: reached for n in names})
        except BaseException:
            self._mark(names, "live")
            shadow.close()
            raise
        self._store.drop_shadow(shadow)
        # After the swap, which is done whatever happens here: a copy kept outside the store
        # that cannot go live raises, and the rebuild is reported failed.
        relocate([self._projections[n] for n in names], self._store)
        return RebuildResult(tuple(names), reached - at_start, seconds, reached)

    def replay(self, names: Sequence[str]) -> int:
        """Replay the named read models into the shadow store up to the end of the log (a
        share of a rebuild, in the process that calls it); the position reached."""
        shadow = self._store.open_shadow()
        try:
            runner = self._runner(shadow, names)
            try:
                runner.catch_up()
            finally:
                runner.close()
            return _position(runner)
        finally:
            shadow.close()

    def _runner(self, shadow: ReadStore, names: Sequence[str]) -> ProjectionRunner:
        return ProjectionRunner(
            self._read_log,
            shadow,
            [self._projections[n] for n in names],
            page_size=self._page_size,
            errors=self._errors,
            skips=load_skips(self._store),
        )

    def _groups(self, names: Sequence[str], jobs: int) -> list[list[str]]:
        """`names` shared among up to `jobs` processes so that their replays take about as
        long: the costliest first, each to the share with the least cost so far (a read
        model's `replay_cost`, 1 when it has none). One share unless replaying in other
        processes is possible: PostgreSQL, and a way to start them."""
        if jobs <= 1 or self._replay_elsewhere is None or self._store.dialect != "postgres":
            return [list(names)]
        cost = {n: float(getattr(self._projections[n], "replay_cost", 1.0)) for n in names}
        shares: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(min(jobs, len(names)))]
        for name in sorted(names, key=lambda n: -cost[n]):
            lightest = min(range(len(shares)), key=lambda i: shares[i][0])
            total, share = shares[lightest]
            shares[lightest] = (total + cost[name], [*share, name])
        return [share for _, share in shares]

    def _replay_in_processes(
        self, groups: list[list[str]], runner: ProjectionRunner, progress: Progress | None
    ) -> None:
        assert self._replay_elsewhere is not None
        with ProcessPoolExecutor(len(groups), mp_context=get_context("spawn")) as pool:
            futures: list[Future[int]] = [pool.submit(self._replay_elsewhere, g) for g in groups]
            while wait(futures, timeout=0.5).not_done:
                if progress is not None:
                    progress(_position(runner), self._log_end())
            for future in futures:
                future.result()  # the first failure, as it was raised there

    def _mark(self, names: Sequence[str], state: str) -> None:
        marks = ", ".join("?" * len(names))
        with self._store.transaction() as tx:
            tx.execute(
                f"UPDATE projection_tracking SET state = ? WHERE name IN ({marks}) AND state != 'failed'",
                (state, *names),
            )


def _position(runner: ProjectionRunner) -> int:
    return min((s.position for s in runner.statuses()), default=0)
