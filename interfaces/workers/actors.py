"""The actors: each one a thin entry point that calls a service of the System.

They are declared on the broker the composition root built (`declare_actors`, called by
`interfaces.bootstrap.build_system`), never at import: dramatiq's `@actor` decorator binds the
global broker as a module is imported, and makes one (RabbitMQ on localhost) if none was set,
before Settings is even read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq

from infrastructure.jobs import Jobs
from projections.status import record_lag_metrics

if TYPE_CHECKING:
    from interfaces.bootstrap import System

REBUILD_PROJECTION = "rebuild_projection"
PROJECTION_WATCH = "projection_watch"
# Queues: one-off operations, and the polls the scheduler sends.
OPERATIONS = "operations"
POLLS = "polls"
# A rebuild of a big log runs long; one interrupted by this limit resumes from its shadow
# when asked for again.
REBUILD_TIME_LIMIT_MS = 6 * 3600 * 1000
POLL_TIME_LIMIT_MS = 60_000


def declare_actors(jobs: Jobs, system: Callable[[], System]) -> None:
    """Declare every actor on `jobs.broker`; `system` gives the System they call, when they run."""

    def rebuild_projection(name: str) -> None:
        """Rebuild one read model (or `all`), as asked for through the admin API."""
        system().rebuilds.run(name)

    def projection_watch() -> None:
        """Measure each read model's lag behind the log and set the lag gauges."""
        running = system()
        record_lag_metrics(running.runner, running.goals.read_log, running.goals.log_position)

    broker = jobs.broker
    # A rebuild is not retried: the operator sees its failure, and asking again resumes it.
    dramatiq.actor(
        broker=broker,
        actor_name=REBUILD_PROJECTION,
        queue_name=jobs.queue(OPERATIONS),
        max_retries=0,
        time_limit=REBUILD_TIME_LIMIT_MS,
    )(rebuild_projection)
    # A poll is not retried either: the next one is due soon.
    dramatiq.actor(
        broker=broker,
        actor_name=PROJECTION_WATCH,
        queue_name=jobs.queue(POLLS),
        max_retries=0,
        time_limit=POLL_TIME_LIMIT_MS,
    )(projection_watch)
