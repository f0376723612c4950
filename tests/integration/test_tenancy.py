"""Tenants are isolated: the same agent id in two tenants is two goals, and no query of one
tenant shows anything of another."""

from __future__ import annotations

import json

import pytest

from application.errors import GoalsNotFound
from application.goals import ProgressUpdate
from interfaces.bootstrap import System
from tests.integration.support import meta, one_objective, two_objectives

SHARED = "shared-agent"


def _two_tenants(system: System, tenant: str) -> tuple[str, str]:
    a, b = f"{tenant}-a", f"{tenant}-b"
    system.goals.set_goals(a, SHARED, one_objective(), meta("alice"))
    system.goals.record_progress(a, ProgressUpdate(SHARED, {"o1": 80}), meta("alice"))
    system.goals.set_goals(a, "only-a", one_objective(), meta("alice"))

    system.goals.set_goals(b, SHARED, two_objectives(), meta("bob"))
    system.goals.change_status(b, SHARED, "paused", "b only", meta("bob"))
    system.goals.set_goals(b, "only-b", one_objective(), meta("bob"))
    system.goals.change_status(b, "only-b", "cancelled", "b only", meta("bob"))
    system.runner.catch_up()
    return a, b


def test_same_agent_id_is_two_goals(system: System, tenant: str) -> None:
    a, b = _two_tenants(system, tenant)
    in_a, in_b = system.goals.goals_at(a, SHARED), system.goals.goals_at(b, SHARED)
    assert in_a.id != in_b.id
    assert (in_a.tenant, in_b.tenant) == (a, b)
    assert (in_a.status, in_b.status) == ("active", "paused")
    assert (in_a.overall_progress, in_b.overall_progress) == (80.0, 0.0)

    view_a = json.loads(system.progress.goal_json(a, SHARED) or "null")
    view_b = json.loads(system.progress.goal_json(b, SHARED) or "null")
    assert view_a["goals"]["primary_objectives"][0]["id"] == "o1"
    assert [o["id"] for o in view_b["goals"]["primary_objectives"]] == ["speed", "accuracy"]
    assert (view_a["created_by"], view_b["created_by"]) == ("alice", "bob")
    assert (view_a["version"], view_b["version"]) == (in_a.version, in_b.version)


def test_queries_never_cross_tenants(system: System, tenant: str) -> None:
    a, b = _two_tenants(system, tenant)

    assert system.progress.goal_json(a, "only-b") is None
    assert system.progress.goal_json(b, "only-a") is None
    listed_a = system.progress.list_goals(a, status=None, limit=100, offset=0)
    listed_b = system.progress.list_goals(b, status=None, limit=100, offset=0)
    assert [g["agent_id"] for g in listed_a.items] == ["only-a", SHARED]
    assert [g["agent_id"] for g in listed_b.items] == ["only-b", SHARED]
    assert (listed_a.total, listed_b.total) == (2, 2)
    assert system.progress.list_goals(a, status="cancelled", limit=100, offset=0).total == 0

    history_a = system.history.history(a, SHARED, after=0, limit=100).items
    history_b = system.history.history(b, SHARED, after=0, limit=100).items
    assert {e["actor"] for e in history_a} == {"alice"}
    assert {e["actor"] for e in history_b} == {"bob"}
    assert not {e["position"] for e in history_a} & {e["position"] for e in history_b}
    assert system.history.history(a, "only-b", after=0, limit=100).items == []
    assert system.history.count_by_action(b, SHARED) == {"goals_set": 1, "status_changed": 1}

    stats_a, stats_b = system.analytics.system(a), system.analytics.system(b)
    assert stats_a["agents_with_goals"] == 2
    assert stats_a["by_status"] == {"active": 2, "paused": 0, "completed": 0, "cancelled": 0}
    assert stats_a["progress_updates"] == 1
    assert stats_b["by_status"] == {"active": 0, "paused": 1, "completed": 0, "cancelled": 1}
    assert stats_b["milestones_achieved"] == 0
    assert stats_b["progress_updates"] == 0
    assert system.analytics.agent(a, "only-b") is None
    figures = system.analytics.agent(b, SHARED)
    assert figures is not None and figures["updates"] == 0


def test_commands_never_reach_another_tenant(system: System, tenant: str) -> None:
    a, b = _two_tenants(system, tenant)
    with pytest.raises(GoalsNotFound):
        system.goals.record_progress(a, ProgressUpdate("only-b", {"o1": 1}), meta())
    with pytest.raises(GoalsNotFound):
        system.goals.change_status(b, "only-a", "paused", "x", meta())
    with pytest.raises(GoalsNotFound):
        system.goals.goals_at(a, "only-b")

    created = system.goals.set_goals(a, "only-b", one_objective(), meta("alice"))
    assert created.first.created is True
    system.runner.catch_up()
    assert json.loads(system.progress.goal_json(b, "only-b") or "null")["status"] == "cancelled"
    assert json.loads(system.progress.goal_json(a, "only-b") or "null")["status"] == "active"
