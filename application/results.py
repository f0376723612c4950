"""What a command answers: the aggregate versions it produced and the log position."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class Written:
    agent_id: str
    aggregate_id: UUID
    version: int
    position: int | None = None
    created: bool = False


@dataclass(frozen=True)
class CommandResult:
    """`position` is the highest log position the command wrote: a client that passes it
    back as `?min_position=` reads its own write."""

    items: tuple[Written, ...]
    position: int
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first(self) -> Written:
        return self.items[0]

    def as_record(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "agent_id": w.agent_id,
                    "aggregate_id": w.aggregate_id.hex,
                    "version": w.version,
                    "created": w.created,
                }
                for w in self.items
            ],
            "extra": self.extra,
        }

    @classmethod
    def from_record(
        cls, record: dict[str, Any], position_of: Callable[[UUID, int], int | None], position: int
    ) -> CommandResult:
        """The answer a command gave before, rebuilt for a retried Idempotency-Key."""
        items = tuple(
            Written(
                i["agent_id"],
                UUID(i["aggregate_id"]),
                i["version"],
                position_of(UUID(i["aggregate_id"]), i["version"]),
                i["created"],
            )
            for i in record["items"]
        )
        return cls(items=items, position=position, replayed=True, extra=record.get("extra", {}))

    def with_positions(self, positions: dict[UUID, int]) -> CommandResult:
        return replace(
            self, items=tuple(replace(w, position=positions.get(w.aggregate_id)) for w in self.items)
        )
