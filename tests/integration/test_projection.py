"""Commands are projected into goal_progress (the GET view) and event_facts (the timeline the history pages through)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from application.errors import GoalsNotFound
from application.goals import ProgressUpdate
from domain.goals import AutoUpdate
from interfaces.bootstrap import System
from tests.integration.support import meta, two_objectives

AGENT = "triage-bot"


def _run_commands(system: System, tenant: str) -> list[int]:
    """Goals, two progress updates (crossing milestones), pause, auto-update, resume.

    Returns the aggregate version each command answered with."""
    goals = system.goals
    results = [
        goals.set_goals(tenant, AGENT, two_objectives(), meta("alice", "req-1")),
        # speed 60 of weight 2, accuracy 0 of weight 1: overall (2*60)/3 = 40
        goals.record_progress(tenant, ProgressUpdate(AGENT, {"speed": 60}), meta("bob", "req-2")),
        # KPI 75 on baseline 50 -> target 100 is 50%: overall (2*60 + 50)/3 = 56.67
        goals.record_progress(
            tenant, ProgressUpdate(AGENT, kpi_values={"accuracy": 75}), meta("bob", "req-3")
        ),
        goals.change_status(tenant, AGENT, "paused", "maintenance", meta("carol", "req-4")),
        goals.configure_auto_update(
            tenant,
            AGENT,
            AutoUpdate(True, 60, "http://agent.local/health", None, {"accuracy": "acc"}),
            meta("carol", "req-5"),
        ),
        goals.change_status(tenant, AGENT, "active", "back", meta("dave", "req-6")),
    ]
    return [r.first.version for r in results]


def test_command_versions_and_positions(system: System, tenant: str) -> None:
    before = system.goals.log_position()
    first = system.goals.set_goals(tenant, AGENT, two_objectives(), meta())
    assert first.first.created is True
    assert first.first.version == 2  # registered + goals set
    assert first.position > before
    assert first.first.position == first.position
    assert system.goals.log_position() >= first.position

    revised = system.goals.set_goals(tenant, AGENT, two_objectives("v2"), meta())
    assert revised.first.created is False
    assert revised.first.version == 3
    assert revised.position > first.position

    with pytest.raises(GoalsNotFound):
        system.goals.record_progress(tenant, ProgressUpdate("nobody", {"speed": 1}), meta())


def test_goal_view_after_catch_up(system: System, tenant: str) -> None:
    versions = _run_commands(system, tenant)
    assert versions == [2, 6, 10, 11, 12, 13]
    system.runner.catch_up()

    raw = system.progress.goal_json(tenant, AGENT)
    assert raw is not None
    view: dict[str, Any] = json.loads(raw)
    history = system.history.history(tenant, AGENT, after=0, limit=100).items

    assert view["agent_id"] == AGENT
    assert view["status"] == "active"
    assert view["goal_version"] == 1
    assert view["version"] == 13
    assert view["target_date"] == "2030-01-01"
    assert view["created_by"] == "alice"
    assert view["goals"] == {
        "purpose_statement": "Triage every support ticket",
        "primary_objectives": [
            {
                "id": "speed",
                "title": "Speed",
                "weight": 2.0,
                "kpi": None,
                "milestones": [25, 50, 75, 90, 100],
            },
            {
                "id": "accuracy",
                "title": "Accuracy",
                "weight": 1.0,
                "kpi": {
                    "metric": "acc",
                    "target": 100.0,
                    "baseline": 50.0,
                    "unit": "%",
                    "direction": "increase",
                },
                "milestones": [25, 50, 75, 90, 100],
            },
        ],
        "success_criteria": ["p50 triage under 2 minutes"],
        "kpis": [],
        "version": "v1",
    }
    progress = view["progress"]
    assert progress["overall_progress"] == 56.67
    assert progress["objective_progress"] == {"speed": 60.0, "accuracy": 50.0}
    assert progress["kpi_values"] == {"accuracy": 75.0}
    assert [
        (m["objective_id"], m["threshold"], m["goal_version"]) for m in progress["milestones_achieved"]
    ] == [
        ("speed", 25, 1),
        ("speed", 50, 1),
        ("overall", 25, 1),
        ("accuracy", 25, 1),
        ("accuracy", 50, 1),
        ("overall", 50, 1),
    ]
    milestone_times = [e["timestamp"] for e in history if e["action"] == "milestone_reached"]
    assert [m["reached_at"] for m in progress["milestones_achieved"]] == milestone_times
    last_progress = [e for e in history if e["action"] == "progress_updated"][-1]
    assert progress["last_updated"] == last_progress["data"]["observed_at"]
    assert view["auto_update"] == {
        "enabled": True,
        "interval_s": 60,
        "health_url": "http://agent.local/health",
        "metrics_url": None,
        "kpi_metrics": {"accuracy": "acc"},
    }
    assert view["updated_at"] == history[-1]["timestamp"]
    assert datetime.fromisoformat(view["created_at"]) <= datetime.fromisoformat(history[0]["timestamp"])

    listed = system.progress.list_goals(tenant, status="active", limit=10, offset=0)
    assert listed.total == 1
    assert listed.items == [view]
    assert system.progress.list_goals(tenant, status="paused", limit=10, offset=0).total == 0


def test_history_entries(system: System, tenant: str) -> None:
    _run_commands(system, tenant)
    system.runner.catch_up()
    entries = system.history.history(tenant, AGENT, after=0, limit=100).items

    assert [e["action"] for e in entries] == [
        "goals_set",
        "progress_updated",
        *["milestone_reached"] * 3,
        "progress_updated",
        *["milestone_reached"] * 3,
        "status_changed",
        "auto_update_configured",
        "status_changed",
    ]
    assert [e["version"] for e in entries] == list(range(2, 14))
    assert [e["actor"] for e in entries] == ["alice", *["bob"] * 8, "carol", "carol", "dave"]
    assert [e["request_id"] for e in entries] == [
        "req-1",
        *["req-2"] * 4,
        *["req-3"] * 4,
        "req-4",
        "req-5",
        "req-6",
    ]
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in entries]
    assert all(s.tzinfo is not None for s in stamps)
    assert stamps == sorted(stamps)
    positions = [e["position"] for e in entries]
    assert positions == sorted(set(positions))

    assert entries[0]["data"]["goal_version"] == 1
    assert entries[0]["data"]["goals"]["purpose_statement"] == "Triage every support ticket"
    assert entries[0]["data"]["target_date"] == "2030-01-01"
    first_progress = entries[1]["data"]
    assert first_progress["objective_progress"] == {"speed": 60.0}
    assert first_progress["overall_progress"] == 40.0
    assert first_progress["kpi_values"] == {}
    assert first_progress["source"] == "manual"
    assert entries[2]["data"] == {
        "objective_id": "speed",
        "threshold": 25,
        "goal_version": 1,
        "progress": 60.0,
    }
    assert entries[4]["data"] == {
        "objective_id": "overall",
        "threshold": 25,
        "goal_version": 1,
        "progress": 40.0,
    }
    assert entries[5]["data"]["objective_progress"] == {"accuracy": 50.0}
    assert entries[5]["data"]["kpi_values"] == {"accuracy": 75.0}
    assert entries[9]["data"] == {"from": "active", "to": "paused", "reason": "maintenance"}
    assert entries[10]["data"]["kpi_metrics"] == {"accuracy": "acc"}
    assert entries[11]["data"] == {"from": "paused", "to": "active", "reason": "back"}

    assert system.history.count_by_action(tenant, AGENT) == {
        "goals_set": 1,
        "progress_updated": 2,
        "milestone_reached": 6,
        "status_changed": 2,
        "auto_update_configured": 1,
    }
    milestones = system.history.history(tenant, AGENT, after=0, limit=100, action="milestone_reached").items
    assert milestones == [e for e in entries if e["action"] == "milestone_reached"]


@pytest.mark.parametrize("page_size", [1, 2, 5, 12, 13])
def test_history_cursor_paging_returns_every_entry_once(system: System, tenant: str, page_size: int) -> None:
    _run_commands(system, tenant)
    system.runner.catch_up()
    everything = system.history.history(tenant, AGENT, after=0, limit=1000).items
    assert len(everything) == 12

    seen: list[dict[str, Any]] = []
    cursor = 0
    pages = 0
    while True:
        page = system.history.history(tenant, AGENT, after=cursor, limit=page_size)
        assert len(page.items) <= page_size
        seen.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.items[-1]["position"]
        cursor = page.next_cursor
    assert seen == everything
    assert pages == -(-12 // page_size)


def test_history_paging_with_action_filter(system: System, tenant: str) -> None:
    _run_commands(system, tenant)
    system.runner.catch_up()
    seen: list[int] = []
    cursor = 0
    while True:
        page = system.history.history(tenant, AGENT, after=cursor, limit=4, action="milestone_reached")
        seen.extend(e["position"] for e in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    everything = system.history.history(tenant, AGENT, after=0, limit=100, action="milestone_reached").items
    assert seen == [e["position"] for e in everything]
    assert len(seen) == 6
