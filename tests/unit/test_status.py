"""The goal status machine (domain/status.py), every pair enumerated."""

from __future__ import annotations

import itertools

import pytest

from domain.status import Status, can_transition

A, P, C, X = Status.ACTIVE, Status.PAUSED, Status.COMPLETED, Status.CANCELLED

# What a caller may do without the reopen flag.
ALLOWED: frozenset[tuple[Status, Status]] = frozenset({(A, P), (P, A), (A, C), (A, X), (P, X)})
# What only an explicit reopen may do: bring a closed goal back to active.
REOPEN: frozenset[tuple[Status, Status]] = frozenset({(C, A), (X, A)})

ALL_PAIRS = list(itertools.product(Status, Status))


def test_there_are_four_statuses() -> None:
    assert [s.value for s in Status] == ["active", "paused", "completed", "cancelled"]


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_transition_without_reopen(current: Status, target: Status) -> None:
    assert can_transition(current, target) is ((current, target) in ALLOWED)


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_reopen_flag_only_brings_closed_goals_back_to_active(current: Status, target: Status) -> None:
    """With reopen=True the closed -> active pairs are allowed; closed goals go nowhere else,
    and the flag never lets a goal stay in place. (Whether reopen=True may also carry an
    ordinary transition such as active -> paused is not specified, so it is not asserted.)"""
    result = can_transition(current, target, reopen=True)
    if (current, target) in REOPEN:
        assert result is True
    elif current in (C, X) or current == target:
        assert result is False


@pytest.mark.parametrize("closed", [C, X])
def test_closed_goals_do_not_reopen_without_the_flag(closed: Status) -> None:
    assert not can_transition(closed, A)
    assert can_transition(closed, A, reopen=True)


@pytest.mark.parametrize("status", list(Status))
def test_no_status_transitions_to_itself(status: Status) -> None:
    assert not can_transition(status, status)
    assert not can_transition(status, status, reopen=True)


def test_closed_states_are_terminal_without_reopen() -> None:
    for closed, target in itertools.product((C, X), Status):
        assert not can_transition(closed, target)
