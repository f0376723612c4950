"""Rebuilds asked for through the API, run as jobs: queued by the API, run by a worker (inside
the API process on the embedded default), their states seen alike by every process.

One rebuild at a time: asking is refused at once (ShadowInUse) while a rebuild holds the
store, whoever started it (the CLI, a worker), and while one asked for is still queued.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from application.ports import JobQueue, JobRecords, JobsUnavailable, ShadowInUse
from projections.rebuild import Rebuilder

log = logging.getLogger(__name__)
# The key a queued or running rebuild holds: one at a time.
REBUILD_KEY = "rebuild"
ALL = "all"
State = Literal["queued", "running", "done", "failed"]


class RebuildQueued(ShadowInUse):
    """A rebuild asked for is queued and has not started yet."""


@dataclass
class RebuildJob:
    name: str
    state: State = "queued"
    started_at: float = field(default_factory=time.time)  # when it was asked for
    finished_at: float | None = None
    events: int | None = None
    events_per_s: float | None = None
    error: str | None = None


class RebuildJobs:
    """Queues rebuilds (`start`, in the API) and runs them (`run`, in the rebuild_projection
    actor), recording each one's state under its read model's name (or `all`)."""

    def __init__(self, rebuilder: Rebuilder, queue: JobQueue, records: JobRecords, *, actor: str) -> None:
        self._rebuilder = rebuilder
        self._queue = queue
        self._records = records
        self._actor = actor

    def start(self, name: str) -> RebuildJob:
        """Queue a rebuild of one read model (or `all`). ShadowInUse at once while another
        rebuild holds the store or is queued; KeyError for an unknown read model;
        JobsUnavailable when the job cannot be queued."""
        names = self._names(name)
        self._rebuilder.claim(names).release()  # ShadowInUse while a rebuild runs, anywhere
        held = self._queue.hold(REBUILD_KEY)
        if held is None:
            raise RebuildQueued("a rebuild asked for is queued or starting; try again when it ends")
        job = RebuildJob(name)
        # On the way out of a failure, the caller gets the first error; a key that cannot be
        # let go of expires by itself (JOB_PENDING_TTL_S).
        try:
            self._records.put(name, asdict(job))
        except JobsUnavailable:
            with suppress(JobsUnavailable):
                self._queue.release(held)
            raise
        try:
            self._queue.send(self._actor, {"name": name}, held=held)  # lets go of the key if it fails
        except JobsUnavailable as error:
            job.state, job.error, job.finished_at = "failed", f"not queued: {error}", time.time()
            with suppress(JobsUnavailable):
                self._records.put(name, asdict(job))
            raise
        return job

    def run(self, name: str) -> RebuildJob:
        """Run a queued rebuild (in a worker): its record says running, then done or failed.
        A rebuild that finds the store held by another fails without being retried."""
        job = RebuildJob(**(self._records.get(name) or asdict(RebuildJob(name))))
        job.state, job.finished_at, job.error = "running", None, None
        self._records.put(name, asdict(job))
        try:
            result = self._rebuilder.rebuild(self._names(name))
        except ShadowInUse as busy:  # started elsewhere since it was queued: nothing to retry
            log.warning("rebuild of %s not run: %s", name, busy)
            self._finish(job, "failed", error=f"{type(busy).__name__}: {busy}")
            return job
        except BaseException as error:
            self._finish(job, "failed", error=f"{type(error).__name__}: {error}")
            raise
        job.events, job.events_per_s = result.events, round(result.events_per_s)
        self._finish(job, "done")
        log.info(
            "rebuilt %s: %d events in %.1fs, now at position %d",
            ", ".join(result.names),
            result.events,
            result.seconds,
            result.position,
        )
        return job

    def latest(self) -> list[dict[str, Any]]:
        """The latest rebuild of each read model (or `all`), whichever process ran it."""
        return self._records.all()

    def _names(self, name: str) -> list[str]:
        return self._rebuilder.names if name == ALL else [name]

    def _finish(self, job: RebuildJob, state: State, *, error: str | None = None) -> None:
        job.state, job.error, job.finished_at = state, error, time.time()
        self._records.put(job.name, asdict(job))
