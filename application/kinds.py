"""The kinds of aggregate the command loop handles: each is keyed by (tenant, key)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate

from application.errors import GoalsNotFound
from domain.goals import AgentGoals
from domain.ids import goals_id


class Keyed(Protocol):
    """What every aggregate the loop handles has: its id, version, and the key in its tenant."""

    id: UUID
    version: int
    agent_id: str


@dataclass(frozen=True)
class Kind:
    noun: str  # what a message calls one ("agent", "registered agent")
    aggregate: type[Aggregate]
    aggregate_id: Callable[[str, str], UUID]
    not_found: Callable[[str], Exception]

    def owns(self, found: object, tenant: str, key: str) -> bool:
        """Whether `found` is this kind's aggregate of `tenant` and `key` (ids are derived
        from both; a mismatch would be another tenant's or another kind's)."""
        return (
            isinstance(found, self.aggregate)
            and getattr(found, "tenant", None) == tenant
            and getattr(found, "agent_id", None) == key
        )


GOALS = Kind("agent", AgentGoals, goals_id, GoalsNotFound)
