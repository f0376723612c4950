"""Operator decisions that change how the log is read, kept in the log like everything else."""

from __future__ import annotations

from eventsourcing.domain import Aggregate


class ProjectionSkip(Aggregate):
    """An operator let one read model pass over one event it could not apply."""

    class Recorded(Aggregate.Created):
        projection: str
        position: int
        reason: str
        actor: str

    def __init__(self, projection: str, position: int, reason: str, actor: str) -> None:
        self.projection = projection
        self.position = position
        self.reason = reason
        self.actor = actor

    @classmethod
    def record(cls, projection: str, position: int, reason: str, actor: str) -> ProjectionSkip:
        return cls._create(cls.Recorded, projection=projection, position=position, reason=reason, actor=actor)
