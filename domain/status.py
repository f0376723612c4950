"""The goal status machine."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.ACTIVE: frozenset({Status.PAUSED, Status.COMPLETED, Status.CANCELLED}),
    Status.PAUSED: frozenset({Status.ACTIVE, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.CANCELLED: frozenset(),
}
_REOPENABLE = frozenset({Status.COMPLETED, Status.CANCELLED})


def can_transition(current: Status, target: Status, *, reopen: bool = False) -> bool:
    """True when `current -> target` is in the machine.

    Completed and cancelled goals go back to active only by an explicit reopen, so a
    stray "active" from a script cannot resurrect a closed goal.
    """
    if target in _ALLOWED[current]:
        return True
    return reopen and current in _REOPENABLE and target is Status.ACTIVE
