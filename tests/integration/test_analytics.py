"""Analytics over a small fixed history match the numbers worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from application.goals import ProgressUpdate
from interfaces.bootstrap import System
from tests.integration.support import meta, one_objective, two_objectives


def _fleet(system: System, tenant: str) -> None:
    """a1..a5, with the figures each ends up with in the comments."""
    goals = system.goals

    def progress(agent: str, **values: float) -> None:
        goals.record_progress(tenant, ProgressUpdate(agent, values), meta())

    for agent in ("a1", "a2", "a3", "a5"):
        goals.set_goals(tenant, agent, one_objective(), meta())
    goals.set_goals(tenant, "a4", two_objectives(), meta())
    progress("a1", o1=10)  # overall 10, no milestone, active
    progress("a2", o1=40)  # overall 40, o1@25 + overall@25 = 2 milestones
    goals.change_status(tenant, "a2", "paused", "waiting", meta())
    progress("a3", o1=100)  # overall 100, 5 + 5 = 10 milestones
    goals.change_status(tenant, "a3", "completed", "done", meta())
    progress("a4", speed=30)  # overall 20: speed@25 = 1 milestone
    goals.change_status(tenant, "a4", "paused", "hold", meta())
    goals.change_status(tenant, "a4", "active", "resume", meta())
    progress("a4", speed=90)  # overall 60: speed@50,75,90 + overall@25,50 = 5 more
    goals.change_status(tenant, "a5", "cancelled", "dropped", meta())  # overall 0
    system.runner.catch_up()


BASIC = (
    "agents_with_goals",
    "by_status",
    "mean_progress",
    "median_progress",
    "milestones_achieved",
    "progress_updates",
)


def _basic(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: figures[k] for k in BASIC}


def test_system_figures(system: System, tenant: str) -> None:
    _fleet(system, tenant)
    assert _basic(system.analytics.system(tenant)) == {
        "agents_with_goals": 5,
        "by_status": {"active": 2, "paused": 1, "completed": 1, "cancelled": 1},
        "mean_progress": 42.0,  # (10 + 40 + 100 + 60 + 0) / 5
        "median_progress": 40.0,
        "milestones_achieved": 18,  # 0 + 2 + 10 + 6 + 0
        "progress_updates": 5,  # 1 + 1 + 1 + 2 + 0
    }


def test_empty_tenant(system: System, tenant: str) -> None:
    figures = system.analytics.system(tenant)
    assert (figures["stagnant"], figures["at_risk"], figures["status_transitions"]) == ([], [], [])
    assert _basic(figures) == {
        "agents_with_goals": 0,
        "by_status": {"active": 0, "paused": 0, "completed": 0, "cancelled": 0},
        "mean_progress": None,
        "median_progress": None,
        "milestones_achieved": 0,
        "progress_updates": 0,
    }
    assert system.analytics.agent(tenant, "nobody") is None


def test_agent_figures(system: System, tenant: str) -> None:
    _fleet(system, tenant)
    history = system.history.history(tenant, "a4", after=0, limit=100).items
    changes = [datetime.fromisoformat(e["timestamp"]) for e in history if e["action"] == "status_changed"]
    paused_at, resumed_at = changes
    now = resumed_at + timedelta(seconds=90)
    figures = system.analytics.agent(tenant, "a4", now=now)
    assert figures is not None
    created = system.goals.goals_at(tenant, "a4").created_on

    assert figures["agent_id"] == "a4"
    assert figures["status"] == "active"
    assert figures["status_since"] == resumed_at.isoformat()
    assert figures["overall_progress"] == 60.0
    assert figures["goal_version"] == 1
    assert figures["updates"] == 2
    assert figures["milestones_achieved"] == 6
    assert figures["objectives"] == [
        {
            "id": "speed",
            "title": "Speed",
            "weight": 2.0,
            "progress": 90.0,
            "milestones_achieved": [25, 50, 75, 90],
        },
        {"id": "accuracy", "title": "Accuracy", "weight": 1.0, "progress": 0.0, "milestones_achieved": []},
    ]
    assert sorted((m["objective_id"], m["threshold"]) for m in figures["milestones"]) == [
        ("overall", 25),
        ("overall", 50),
        ("speed", 25),
        ("speed", 50),
        ("speed", 75),
        ("speed", 90),
    ]
    last_progress = [e for e in history if e["action"] == "progress_updated"][-1]
    assert figures["last_updated"] == last_progress["data"]["observed_at"]

    spent = figures["time_in_status_s"]
    assert set(spent) == {"active", "paused"}
    active = (paused_at - created).total_seconds() + 90.0
    assert spent["active"] == pytest.approx(active, abs=0.002)
    assert spent["paused"] == pytest.approx((resumed_at - paused_at).total_seconds(), abs=0.002)


@pytest.mark.parametrize(
    ("agent", "status", "overall", "updates", "milestones", "statuses"),
    [
        ("a1", "active", 10.0, 1, 0, {"active"}),
        ("a2", "paused", 40.0, 1, 2, {"active", "paused"}),
        ("a3", "completed", 100.0, 1, 10, {"active", "completed"}),
        ("a5", "cancelled", 0.0, 0, 0, {"active", "cancelled"}),
    ],
)
def test_other_agents(
    system: System,
    tenant: str,
    agent: str,
    status: str,
    overall: float,
    updates: int,
    milestones: int,
    statuses: set[str],
) -> None:
    _fleet(system, tenant)
    figures = system.analytics.agent(tenant, agent)
    assert figures is not None
    assert (figures["status"], figures["overall_progress"], figures["updates"]) == (status, overall, updates)
    assert figures["milestones_achieved"] == milestones
    assert set(figures["time_in_status_s"]) == statuses
    expected = [25, 50, 75, 90, 100][: {0: 0, 2: 1, 10: 5}[milestones]]
    assert figures["objectives"] == [
        {"id": "o1", "title": "O1", "weight": 1.0, "progress": overall, "milestones_achieved": expected}
    ]
