"""The collector's schedule: who is due, once per interval, and what a sweep reads."""

from __future__ import annotations

from dataclasses import dataclass

from application.collection_schedule import CollectionSchedule


@dataclass(frozen=True)
class Target:
    tenant: str
    agent_id: str
    interval_s: int
    polled: bool
    position: int


class Targets:
    def __init__(self) -> None:
        self.rows: list[Target] = []
        self.asked: list[int] = []

    def changed_since(self, position: int) -> list[Target]:
        self.asked.append(position)
        return [t for t in self.rows if t.position > position]


def schedule(
    targets: Targets, sent: list[tuple[str, float]], pending: frozenset[str] = frozenset()
) -> CollectionSchedule:
    def send(tenant: str, agent_id: str, due: float) -> bool:
        if agent_id in pending:
            return False
        sent.append((agent_id, due))
        return True

    return CollectionSchedule(targets.changed_since, send, spread=lambda interval: interval / 2)


def test_a_target_configured_while_running_is_polled_at_once_then_every_interval() -> None:
    targets, sent = Targets(), list[tuple[str, float]]()
    running = schedule(targets, sent)
    running.sweep(100.0)
    targets.rows.append(Target("t", "a", 5, True, 1))
    running.sweep(101.0)
    assert sent == [("a", 101.0)]
    for now in (102.0, 105.9):
        running.sweep(now)
    assert len(sent) == 1
    running.sweep(106.0)
    running.sweep(111.5)
    assert sent == [("a", 101.0), ("a", 106.0), ("a", 111.0)]


def test_targets_found_at_start_are_spread_and_a_stopped_scheduler_sends_one_poll_not_a_burst() -> None:
    targets, sent = Targets(), list[tuple[str, float]]()
    targets.rows = [Target("t", "a", 10, True, 1)]
    running = schedule(targets, sent)
    running.sweep(0.0)
    assert sent == []
    running.sweep(5.0)  # spread: half an interval
    running.sweep(100.0)  # nine intervals missed
    running.sweep(100.5)
    assert sent == [("a", 5.0), ("a", 15.0)]
    running.sweep(110.0)
    assert sent[-1] == ("a", 110.0)


def test_disabled_or_paused_targets_are_dropped_and_a_pending_poll_is_not_resent() -> None:
    targets, sent = Targets(), list[tuple[str, float]]()
    running = schedule(targets, sent, pending=frozenset({"b"}))
    running.sweep(0.0)
    targets.rows = [Target("t", "a", 5, True, 1), Target("t", "b", 5, True, 2)]
    running.sweep(1.0)
    assert sent == [("a", 1.0)]
    targets.rows.append(Target("t", "a", 5, False, 3))
    running.sweep(20.0)
    assert sent == [("a", 1.0)] and running.scheduled == 1


def test_a_sweep_reads_only_what_changed_since_the_last() -> None:
    targets, sent = Targets(), list[tuple[str, float]]()
    running = schedule(targets, sent)
    targets.rows = [Target("t", f"a{i}", 5, True, i + 1) for i in range(3)]
    running.sweep(0.0)
    running.sweep(1.0)
    assert targets.asked[-1] == 3
