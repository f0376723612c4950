"""The reachability actors: the scheduler's poll sends a check of every live agent registered
here, each under its own key (one check per agent at a time, however slow the workers)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq
from prometheus_client import Gauge

from infrastructure.jobs import Jobs

if TYPE_CHECKING:
    from interfaces.bootstrap import System

CHECK_REACHABILITY = "check_reachability"
CHECK_AGENT_REACHABILITY = "check_agent_reachability"
POLLS = "polls"
CHECK_TIME_LIMIT_MS = 60_000
UNREACHABLE = Gauge(
    "a2a_registry_unreachable_agents",
    "Live registered agents whose own card URL did not answer at their last check.",
    multiprocess_mode="mostrecent",
)
# The gauge is a registry-wide count: refreshed at most this often by single checks, so a
# round of N checks costs O(N) counts over the round, not one count per check.
GAUGE_REFRESH_S = 1.0
log = logging.getLogger(__name__)


def reachability_key(tenant: str, agent_id: str) -> str:
    return f"{CHECK_AGENT_REACHABILITY}:{tenant}:{agent_id}"


def declare_reachability_actors(jobs: Jobs, system: Callable[[], System]) -> None:
    refreshed = [0.0]
    lock = threading.Lock()

    def refresh_gauge(running: System, *, at_once: bool = False) -> None:
        now = time.monotonic()
        with lock:
            if not at_once and now - refreshed[0] < GAUGE_REFRESH_S:
                return
            refreshed[0] = now
        UNREACHABLE.set(running.reachability_reads.unreachable())

    def check_reachability() -> None:
        """Send a check of every live agent, but of one whose last check has not run yet."""
        running = system()
        for tenant, agent_id in running.reachability_reads.due():
            jobs.send_once(
                CHECK_AGENT_REACHABILITY,
                {"tenant": tenant, "agent_id": agent_id},
                key=reachability_key(tenant, agent_id),
            )
        refresh_gauge(running, at_once=True)

    def check_agent_reachability(tenant: str, agent_id: str) -> None:
        """Fetch one agent's card URL and record whether it answered (an event if that changed)."""
        running = system()
        running.reachability.check(tenant, agent_id)
        refresh_gauge(running)

    # Not retried: the next check is due at the next interval.
    for actor, name in (
        (check_reachability, CHECK_REACHABILITY),
        (check_agent_reachability, CHECK_AGENT_REACHABILITY),
    ):
        dramatiq.actor(
            broker=jobs.broker,
            actor_name=name,
            queue_name=jobs.queue(POLLS),
            max_retries=0,
            time_limit=CHECK_TIME_LIMIT_MS,
        )(actor)
