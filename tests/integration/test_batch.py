"""record_progress_batch: many agents' progress in one transaction, all of it or none."""

from __future__ import annotations

from dataclasses import replace

import pytest

from application.command_loop import Idempotency
from application.goals import ProgressUpdate
from domain.errors import InvalidCommand
from domain.ids import goals_id
from interfaces.bootstrap import System
from tests.integration.support import meta, one_objective, two_objectives

AGENTS = ("b1", "b2", "b3")


def _fleet(system: System, tenant: str) -> None:
    for agent in AGENTS:
        system.goals.set_goals(tenant, agent, two_objectives(), meta())


def _untouched(system: System, tenant: str) -> None:
    for agent in AGENTS:
        goals = system.goals.goals_at(tenant, agent)
        assert goals.update_count == 0
        assert goals.objective_progress == {}


def test_batch_records_every_agent(system: System, tenant: str) -> None:
    _fleet(system, tenant)
    result = system.goals.record_progress_batch(
        tenant,
        [
            ProgressUpdate("b1", {"speed": 30}),
            ProgressUpdate("b2", kpi_values={"accuracy": 100}),
            ProgressUpdate("b3", {"speed": 90, "accuracy": 90}),
        ],
        meta("bulk-loader", "req-batch"),
    )
    assert [w.agent_id for w in result.items] == list(AGENTS)
    assert all(w.position is not None and w.position <= result.position for w in result.items)
    assert not any(w.created for w in result.items)

    system.runner.catch_up()
    overall = {a: system.goals.goals_at(tenant, a).overall_progress for a in AGENTS}
    assert overall == {"b1": 20.0, "b2": 33.33, "b3": 90.0}
    for agent in AGENTS:
        entries = system.history.history(tenant, agent, after=0, limit=50, action="progress_updated").items
        assert len(entries) == 1
        assert entries[0]["data"]["source"] == "bulk"
        assert entries[0]["actor"] == "bulk-loader"
        assert entries[0]["request_id"] == "req-batch"


def test_batch_same_agent_twice_applies_both_in_order(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "b1", one_objective(), meta())
    result = system.goals.record_progress_batch(
        tenant, [ProgressUpdate("b1", {"o1": 10}), ProgressUpdate("b1", {"o1": 60})], meta()
    )
    assert len(result.items) == 1
    goals = system.goals.goals_at(tenant, "b1")
    assert goals.update_count == 2
    assert goals.objective_progress == {"o1": 60.0}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (ProgressUpdate("ghost", {"speed": 10}), "updates.1.agent_id"),
        (ProgressUpdate("b2", {"nope": 10}), "updates.1.objective_progress.nope"),
        (ProgressUpdate("b2", {"speed": 140}), "updates.1.objective_progress.speed"),
        (ProgressUpdate("b2", kpi_values={"speed": 3}), "updates.1.kpi_values.speed"),
        (ProgressUpdate("b2"), "updates.1.objective_progress"),
        (ProgressUpdate("b2", {"speed": 10}, overall_progress=99), "updates.1.overall_progress"),
    ],
)
def test_one_bad_item_writes_nothing(system: System, tenant: str, bad: ProgressUpdate, field: str) -> None:
    _fleet(system, tenant)
    logged = system.goals.log_position()
    updates = [ProgressUpdate("b1", {"speed": 50}), bad, ProgressUpdate("b3", {"speed": 70})]

    with pytest.raises(InvalidCommand) as invalid:
        system.goals.record_progress_batch(tenant, updates, meta())

    assert field in invalid.value.errors
    assert all(k.startswith("updates.1") for k in invalid.value.errors)
    assert system.goals.log_position() == logged
    _untouched(system, tenant)


def test_all_bad_items_are_named(system: System, tenant: str) -> None:
    _fleet(system, tenant)
    logged = system.goals.log_position()
    with pytest.raises(InvalidCommand) as invalid:
        system.goals.record_progress_batch(
            tenant,
            [
                ProgressUpdate("b1", {"x": 1}),
                ProgressUpdate("b2", {"speed": 5}),
                ProgressUpdate("zz", {"s": 1}),
            ],
            meta(),
        )
    assert set(invalid.value.errors) == {"updates.0.objective_progress.x", "updates.2.agent_id"}
    assert system.goals.log_position() == logged


def test_item_on_a_paused_goal_refuses_the_batch(system: System, tenant: str) -> None:
    _fleet(system, tenant)
    system.goals.change_status(tenant, "b3", "paused", "hold", meta())
    logged = system.goals.log_position()
    with pytest.raises(InvalidCommand) as invalid:
        system.goals.record_progress_batch(
            tenant, [ProgressUpdate("b1", {"speed": 5}), ProgressUpdate("b3", {"speed": 5})], meta()
        )
    assert list(invalid.value.errors) == ["updates.1"]
    assert "paused" in invalid.value.errors["updates.1"]
    assert system.goals.log_position() == logged
    _untouched(system, tenant)


def test_batch_is_idempotent(system: System, tenant: str) -> None:
    _fleet(system, tenant)
    key = Idempotency("batch-key", "fp")
    updates = [ProgressUpdate("b1", {"speed": 5}), ProgressUpdate("b2", {"speed": 5})]
    first = system.goals.record_progress_batch(tenant, updates, meta(), idempotency=key)
    logged = system.goals.log_position()
    again = system.goals.record_progress_batch(tenant, updates, meta(), idempotency=key)
    assert again.replayed is True
    assert system.goals.log_position() == logged
    assert [(w.agent_id, w.version, w.position) for w in again.items] == [
        (w.agent_id, w.version, w.position) for w in first.items
    ]
    assert again.position == first.position


def test_a_refused_update_reads_only_its_own_agent_again(system: System, tenant: str) -> None:
    """A refusal is decided again on the log, but for the refused agents only: one paused
    agent in a batch does not make every other agent of it be replayed from the log."""
    _fleet(system, tenant)
    system.goals.change_status(tenant, "b2", "paused", "", meta())
    cache = system.goals.repository.cache
    assert cache is not None
    cached = {agent: cache.get(goals_id(tenant, agent)) for agent in AGENTS}
    with pytest.raises(InvalidCommand) as refused:
        system.goals.record_progress_batch(
            tenant, [ProgressUpdate(agent, {"speed": 10}) for agent in AGENTS], meta()
        )
    assert set(refused.value.errors) == {"updates.1"}
    assert cache.get(goals_id(tenant, "b1")) is cached["b1"]
    assert cache.get(goals_id(tenant, "b3")) is cached["b3"]
    assert cache.get(goals_id(tenant, "b2")) is not cached["b2"]  # read again from the log
    _untouched_but_b2 = [system.goals.goals_at(tenant, a).update_count for a in ("b1", "b3")]
    assert _untouched_but_b2 == [0, 0]


def test_goals_the_rules_refuse_whatever_the_state_are_refused_without_a_load(system: System, tenant: str) -> None:
    _fleet(system, tenant)
    cache = system.goals.repository.cache
    assert cache is not None
    before = cache.get(goals_id(tenant, "b1"))
    bad = replace(two_objectives(), purpose_statement="")
    with pytest.raises(InvalidCommand):
        system.goals.set_goals(tenant, "b1", bad, meta())
    assert cache.get(goals_id(tenant, "b1")) is before
