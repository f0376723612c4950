"""Where each read model is: position, lag in events and seconds, state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from projections.projection import ReadLog
from projections.runner import ProjectionRunner


def projection_status(
    runner: ProjectionRunner, read_log: ReadLog, log_end: Callable[[], int], now: datetime | None = None
) -> list[dict[str, Any]]:
    """One entry per read model; `lag_s` is the age of the oldest event it has not applied."""
    end = log_end()
    now = now or datetime.now(UTC)
    oldest_pending: dict[int, float] = {}
    entries = []
    for s in runner.statuses():
        lag_events = max(0, end - s.position)
        lag_s = 0.0
        if lag_events:
            if s.position not in oldest_pending:
                page = read_log(s.position, 1)
                oldest_pending[s.position] = (now - page[0][1].timestamp).total_seconds() if page else 0.0
            lag_s = max(0.0, oldest_pending[s.position])
        entries.append(
            {
                "name": s.name,
                "position": s.position,
                "lag_events": lag_events,
                "lag_s": round(lag_s, 3),
                "state": s.state,
                "error": s.error,
                "failed_position": s.failed_position,
            }
        )
    return entries
