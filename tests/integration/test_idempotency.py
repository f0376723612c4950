"""Idempotency keys: a retried request writes once and answers as the first time did."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from application.command_loop import Idempotency
from application.goals import ProgressUpdate
from application.results import CommandResult
from domain.errors import GoalNotActive
from domain.idempotency import KeyReused
from interfaces.bootstrap import System
from tests.integration.support import aggregate_events, meta, one_objective, two_objectives


def _progress_events(system: System, tenant: str, agent_id: str) -> int:
    return sum(
        1 for e in aggregate_events(system, tenant, agent_id) if type(e).__name__ == "ProgressRecorded"
    )


def test_retry_with_same_key_writes_once(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "a1", one_objective(), meta())
    key = Idempotency("key-1", "fingerprint-1")
    update = ProgressUpdate("a1", {"o1": 30})

    first = system.goals.record_progress(tenant, update, meta("alice"), idempotency=key)
    logged = system.goals.log_position()
    again = system.goals.record_progress(tenant, update, meta("alice"), idempotency=key)

    assert first.replayed is False
    assert again.replayed is True
    assert system.goals.log_position() == logged
    assert again.position == first.position
    assert again.first.version == first.first.version
    assert again.first.position == first.first.position
    assert again.first.aggregate_id == first.first.aggregate_id
    assert again.first.created == first.first.created
    assert _progress_events(system, tenant, "a1") == 1

    system.runner.catch_up()
    assert system.history.count_by_action(tenant, "a1")["progress_updated"] == 1


def test_retry_of_a_creating_command_still_says_created(system: System, tenant: str) -> None:
    key = Idempotency("create-1", "fp")
    first = system.goals.set_goals(tenant, "a1", two_objectives(), meta(), idempotency=key)
    again = system.goals.set_goals(tenant, "a1", two_objectives(), meta(), idempotency=key)
    assert first.first.created is True
    assert (again.replayed, again.first.created, again.first.version) == (True, True, first.first.version)
    assert again.position == first.position
    assert system.goals.goals_at(tenant, "a1").goal_version == 1


def test_same_key_different_request_is_refused(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "a1", one_objective(), meta())
    system.goals.record_progress(
        tenant, ProgressUpdate("a1", {"o1": 10}), meta(), idempotency=Idempotency("k", "fp-a")
    )
    logged = system.goals.log_position()

    with pytest.raises(KeyReused) as raised:
        system.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 20}), meta(), idempotency=Idempotency("k", "fp-b")
        )
    assert raised.value.key == "k"
    # a key is a key for any command: reusing it for another command is refused too
    with pytest.raises(KeyReused):
        system.goals.change_status(tenant, "a1", "paused", "x", meta(), idempotency=Idempotency("k", "fp-c"))
    assert system.goals.log_position() == logged
    assert system.goals.goals_at(tenant, "a1").objective_progress == {"o1": 10.0}


def test_keys_are_per_tenant(system: System, tenant: str) -> None:
    other = f"{tenant}-other"
    key = Idempotency("shared-key", "fp")
    for t in (tenant, other):
        system.goals.set_goals(t, "a1", one_objective(), meta())
    first = system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 40}), meta(), idempotency=key)
    elsewhere = system.goals.record_progress(other, ProgressUpdate("a1", {"o1": 40}), meta(), idempotency=key)
    assert first.replayed is False
    assert elsewhere.replayed is False
    assert elsewhere.position > first.position
    assert _progress_events(system, other, "a1") == 1


def test_failed_command_does_not_burn_the_key(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "a1", one_objective(), meta())
    key = Idempotency("k-fail", "fp")
    system.goals.change_status(tenant, "a1", "paused", "hold", meta())
    with pytest.raises(GoalNotActive):
        system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 5}), meta(), idempotency=key)
    system.goals.change_status(tenant, "a1", "active", "go", meta())
    result = system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 5}), meta(), idempotency=key)
    assert result.replayed is False
    assert _progress_events(system, tenant, "a1") == 1


@pytest.mark.parametrize("threads", [8])
def test_concurrent_retries_write_exactly_once(system: System, tenant: str, threads: int) -> None:
    system.goals.set_goals(tenant, "a1", one_objective(), meta())
    key = Idempotency("race-key", "race-fp")
    start = threading.Barrier(threads)

    def call(_: int) -> CommandResult:
        start.wait()
        return system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 55}), meta(), idempotency=key)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(call, range(threads)))

    originals = [r for r in results if not r.replayed]
    assert len(originals) == 1
    assert {(r.position, r.first.version, r.first.position) for r in results} == {
        (originals[0].position, originals[0].first.version, originals[0].first.position)
    }
    assert _progress_events(system, tenant, "a1") == 1
    assert system.goals.goals_at(tenant, "a1").update_count == 1
    system.runner.catch_up()
    assert system.history.count_by_action(tenant, "a1")["progress_updated"] == 1
