"""Operator use cases on the read side, recorded in the log before they take effect."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application

from domain.operations import ProjectionSkip


def record_skip(app: Application[UUID], projection: str, position: int, reason: str, actor: str) -> int:
    """Record that `projection` will pass over the event at `position`; returns the log position."""
    recordings = app.save(ProjectionSkip.record(projection, position, reason, actor))
    return recordings[-1].notification.id
