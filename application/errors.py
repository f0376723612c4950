"""Errors of the use cases (as opposed to domain rules)."""

from __future__ import annotations

from domain.errors import InvalidCommand


class GoalsNotFound(Exception):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"no goals for agent {agent_id!r}")
        self.agent_id = agent_id


class VersionMismatch(Exception):
    """If-Match named a version that is not the current one."""

    def __init__(self, agent_id: str, expected: str, actual: int | None) -> None:
        super().__init__(f"agent {agent_id!r} is at version {actual}, not {expected}")
        self.agent_id = agent_id
        self.expected = expected
        self.actual = actual


class ConcurrencyConflict(Exception):
    """Concurrent writers kept winning: the command gave up after its bounded retries."""

    def __init__(self, agent_id: str, attempts: int, *, kind: str = "agent") -> None:
        super().__init__(f"{kind} {agent_id!r} changed concurrently {attempts} times; try again")
        self.agent_id = agent_id
        self.attempts = attempts


class NotCaughtUp(Exception):
    """A read model did not reach the requested log position in time."""

    def __init__(self, projection: str, wanted: int, reached: int, waited_s: float) -> None:
        super().__init__(
            f"read model {projection} is at position {reached}, not yet {wanted} (waited {waited_s:.1f}s)"
        )
        self.projection = projection
        self.wanted = wanted
        self.reached = reached


class BatchRefused(InvalidCommand):
    """Updates of a batch the rules refused; `agent_ids` are the agents they were for."""

    def __init__(self, errors: dict[str, str], agent_ids: set[str]) -> None:
        super().__init__(errors)
        self.agent_ids = agent_ids
