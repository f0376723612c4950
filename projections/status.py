"""Where each read model is: position, lag in events and seconds, state, and whether it
advances, from its tracking row, whichever process runs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from projections.projection import ReadLog
from projections.runner import ProjectionRunner
from projections.tracking import ProjectionStatus

# The smallest lag in seconds of a read model behind the log: 0 means it has applied every
# event, even when the clock of the process that wrote the oldest one runs ahead of ours.
LEAST_LAG_S = 0.001
# Set by the projection_watch job every PROJECTION_WATCH_S, in the process that runs it.
LAG_EVENTS = Gauge(
    "a2a_projection_lag_events", "Events of the log a read model has not applied yet.",
    ["projection"],
    multiprocess_mode="mostrecent",
)
LAG_SECONDS = Gauge(
    "a2a_projection_lag_seconds",
    "Age in seconds of the oldest event a read model has not applied (0: none).",
    ["projection"],
    multiprocess_mode="mostrecent",
)


@dataclass(frozen=True)
class ReadModelLag:
    """A read model's tracking row, and how far behind the log it is."""

    status: ProjectionStatus
    lag_events: int
    lag_s: float  # the age of the oldest event it has not applied; 0 when it has applied all

    def advancing(self, patience_s: float, now: float | None = None) -> bool:
        """Not failed, and not behind the log for longer than `patience_s` without its row
        moving in that time: the runner of it, in whatever process, commits pages."""
        if self.status.state == "failed":
            return False
        now = time.time() if now is None else now
        return self.lag_s <= patience_s or now - self.status.updated_at <= patience_s


def read_model_lags(
    statuses: Sequence[ProjectionStatus], read_log: ReadLog, log_end: int, now: datetime | None = None
) -> list[ReadModelLag]:
    """The lag of each read model: one read of the log per position read models stand at."""
    now = now or datetime.now(UTC)
    oldest_pending: dict[int, float] = {}
    lags = []
    for s in statuses:
        lag_events = max(0, log_end - s.position)
        lag_s = 0.0
        if lag_events:
            if s.position not in oldest_pending:
                page = read_log(s.position, 1)
                oldest_pending[s.position] = (now - page[0][1].timestamp).total_seconds() if page else 0.0
            lag_s = max(LEAST_LAG_S, oldest_pending[s.position])
        lags.append(ReadModelLag(s, lag_events, round(lag_s, 3)))
    return lags


def projection_status(
    runner: ProjectionRunner, read_log: ReadLog, log_end: Callable[[], int], now: datetime | None = None
) -> list[dict[str, Any]]:
    """One entry per read model, for operators: positions, lags in events and seconds, state,
    error; `lag_s` is the age of the oldest event it has not applied."""
    end = log_end()
    return [
        {
            "name": lag.status.name,
            "position": lag.status.position,
            "lag_events": lag.lag_events,
            "lag_s": lag.lag_s,
            "state": lag.status.state,
            "error": lag.status.error,
            "failed_position": lag.status.failed_position,
        }
        for lag in read_model_lags(runner.statuses(), read_log, end, now)
    ]


def record_lag_metrics(
    runner: ProjectionRunner, read_log: ReadLog, log_end: Callable[[], int]
) -> list[ReadModelLag]:
    """Measure every read model's lag from its tracking row and set the lag gauges."""
    lags = read_model_lags(runner.statuses(), read_log, log_end())
    for lag in lags:
        LAG_EVENTS.labels(lag.status.name).set(lag.lag_events)
        LAG_SECONDS.labels(lag.status.name).set(lag.lag_s)
    return lags
