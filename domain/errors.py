"""Named domain errors: what a rule says when it says no."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every rule violation raised by the domain."""


class GoalNotActive(DomainError):
    def __init__(self, agent_id: str, status: str) -> None:
        super().__init__(f"goal of agent {agent_id!r} is {status}; progress needs an active goal")
        self.agent_id = agent_id
        self.status = status


class TransitionRefused(DomainError):
    def __init__(self, agent_id: str, from_status: str, to_status: str) -> None:
        super().__init__(f"status of agent {agent_id!r} cannot change from {from_status} to {to_status}")
        self.agent_id = agent_id
        self.from_status = from_status
        self.to_status = to_status


class InvalidCommand(DomainError):
    """A command whose values break a rule (goals, progress, a status, a client's scopes...);
    `errors` maps each field path to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors.items()))
        self.errors = errors
