"""`a2a-goals scheduler`: sends the periodic jobs (polls) to the workers when they are due.

Polls never pile up when workers are slow: a poll is sent under its key, which it holds until
a worker has run it (or until JOB_PENDING_TTL_S passes before one starts it), and a poll whose
key is held is not sent again, only counted as `pending`. On the scheduler's side, each poll
has one instance at a time and missed runs are coalesced into one.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Counter

from application.ports import JobsUnavailable
from infrastructure.jobs import Jobs
from infrastructure.settings import Settings
from interfaces.webhook_system import DISPATCH_WEBHOOKS
from interfaces.workers.actors import PROJECTION_WATCH, PRUNE_READ_SIDE, SYNC_PEERS, declare_actors
from interfaces.workers.anchoring import ANCHOR_AUDIT_LOG
from interfaces.workers.collection import CHECK_STAGNATION, scheduler_sweep
from interfaces.workers.reachability import CHECK_REACHABILITY
from projections.retention import RetentionPolicy

log = logging.getLogger(__name__)
POLLS_SENT = Counter(
    "a2a_job_polls_total",
    "Polls that came due, by actor and outcome: sent, pending (the previous one has not run"
    " yet, so none was sent) or failed (the broker could not be reached).",
    ["actor", "outcome"],
)


@dataclass(frozen=True)
class Poll:
    """A job sent every `every_s` seconds under `key`."""

    actor: str
    every_s: float
    key: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    at_start: bool = True  # False: the first one after `every_s`, not when the scheduler starts


def polls(settings: Settings) -> list[Poll]:
    """The periodic jobs of this deployment."""
    due = []
    if settings.projection_watch_s > 0:
        due.append(Poll(PROJECTION_WATCH, settings.projection_watch_s, key=PROJECTION_WATCH))
    if settings.enable_federation and settings.peer_sync_s > 0:
        due.append(Poll(SYNC_PEERS, settings.peer_sync_s, key=SYNC_PEERS))
    if settings.reachability_check_s > 0:
        # Not at every start: a restart would check the whole registry at once, again.
        due.append(
            Poll(CHECK_REACHABILITY, settings.reachability_check_s, key=CHECK_REACHABILITY, at_start=False)
        )
    if settings.webhook_dispatch_s > 0:
        due.append(Poll(DISPATCH_WEBHOOKS, settings.webhook_dispatch_s, key=DISPATCH_WEBHOOKS))
    if settings.anchoring and settings.anchor_check_s > 0:
        due.append(Poll(ANCHOR_AUDIT_LOG, settings.anchor_check_s, key=ANCHOR_AUDIT_LOG))
    if settings.stagnation_check_s > 0:
        due.append(Poll(CHECK_STAGNATION, settings.stagnation_check_s, key=CHECK_STAGNATION))
    retention = RetentionPolicy(settings.retention_days, settings.retention_days_by_tenant)
    if settings.retention_check_s > 0 and retention.prunes:
        due.append(Poll(PRUNE_READ_SIDE, settings.retention_check_s, key=PRUNE_READ_SIDE))
    return due


class JobScheduler:
    """APScheduler 3 in a background thread, sending each poll when it is due (the first at once,
    unless the poll says otherwise)."""

    def __init__(self, jobs: Jobs, due: Sequence[Poll]) -> None:
        self._jobs = jobs
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"max_instances": 1, "coalesce": True},
        )
        for poll in due:
            self._scheduler.add_job(
                self.send,
                IntervalTrigger(seconds=poll.every_s, timezone=UTC),
                args=[poll],
                id=poll.key,
                next_run_time=datetime.now(UTC) + timedelta(seconds=0 if poll.at_start else poll.every_s),
            )

    def send(self, poll: Poll) -> bool:
        """Send `poll` unless the one sent before under its key is still pending or running."""
        try:
            sent = self._jobs.send_once(poll.actor, poll.kwargs, key=poll.key)
        except JobsUnavailable as error:
            POLLS_SENT.labels(poll.actor, "failed").inc()
            log.warning("poll %s not sent: %s", poll.key, error)
            return False
        POLLS_SENT.labels(poll.actor, "sent" if sent else "pending").inc()
        return sent

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        """Stop sending; a send under way finishes first."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)


def run_scheduler(settings: Settings) -> None:
    """Send the polls until SIGTERM or SIGINT; the workers run them."""
    jobs = Jobs(settings)
    declare_actors(jobs, _runs_no_jobs)  # sending needs the actors' queues, not a System
    scheduler = JobScheduler(jobs, polls(settings))
    sweep = scheduler_sweep(settings, jobs)  # the due polls of the metrics collector
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler.start()
    sweep.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        sweep.stop()
        scheduler.stop()
        jobs.close()


def _runs_no_jobs() -> NoReturn:
    raise RuntimeError("the scheduler process sends jobs and runs none")
