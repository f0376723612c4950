"""Whether a read model advances, from its tracking row and its lag: a runner that has been
idle for an hour is not stalled by an event written a moment ago, one whose row has not moved
while events wait for longer than the patience is, and a failed one never advances."""

from __future__ import annotations

from projections.status import ReadModelLag
from projections.tracking import ProjectionStatus

NOW = 1_800_000_000.0
PATIENCE_S = 30.5


def lag(*, lag_s: float, row_age_s: float, state: str = "live") -> ReadModelLag:
    status = ProjectionStatus("goal_progress", 41, state, None, updated_at=NOW - row_age_s)
    return ReadModelLag(status, lag_events=1 if lag_s else 0, lag_s=lag_s)


def test_caught_up_is_advancing_however_old_its_row() -> None:
    assert lag(lag_s=0.0, row_age_s=3600).advancing(PATIENCE_S, NOW)


def test_an_event_written_a_moment_ago_after_an_idle_hour_is_not_a_stall() -> None:
    assert lag(lag_s=0.2, row_age_s=3600).advancing(PATIENCE_S, NOW)


def test_far_behind_but_committing_pages_is_advancing() -> None:
    assert lag(lag_s=600.0, row_age_s=1.5).advancing(PATIENCE_S, NOW)


def test_behind_past_the_patience_with_a_row_that_did_not_move_is_a_stall() -> None:
    assert not lag(lag_s=31.0, row_age_s=31.0).advancing(PATIENCE_S, NOW)


def test_a_failed_read_model_does_not_advance() -> None:
    assert not lag(lag_s=0.0, row_age_s=0.0, state="failed").advancing(PATIENCE_S, NOW)
