"""Schema evolution: events stored by earlier versions (a ProgressRecorded v1, a GoalsSet v1
with any JSON in its free-form fields) still load and project."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, StoredEvent
from eventsourcing.utils import get_topic

from application.transcodings import register_domain_transcodings
from domain.goals import AgentGoals
from domain.ids import goals_id
from domain.legacy import MAX_DEPTH, TOO_DEEP
from domain.objectives import GoalDefinition
from interfaces.bootstrap import System
from tests.integration.support import meta, two_objectives


def _store_as_v1(system: System, event: AgentGoals.ProgressRecorded) -> None:
    """What the v1 code wrote: the same event without `previous_overall` and without a
    class_version (eventsourcing reads a missing class_version as 1)."""
    stored = system.goals.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    del state["previous_overall"]
    v1 = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, json.dumps(state).encode()
    )
    system.goals.recorder.insert_events([v1])


def test_a_v1_progress_event_loads_and_projects(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "old", two_objectives(), meta())
    goals: AgentGoals = system.goals.repository.get(goals_id(tenant, "old"))
    goals.record_progress(meta("legacy"), objective_progress={"speed": 15})
    (event,) = goals.collect_events()
    assert isinstance(event, AgentGoals.ProgressRecorded)
    _store_as_v1(system, event)

    reloaded: AgentGoals = system.goals.repository.get(
        goals_id(tenant, "old"), version=event.originator_version
    )
    assert reloaded.objective_progress == {"speed": 15.0}
    assert reloaded.overall_progress == 10.0
    (stored_event,) = [
        e
        for e in system.goals.events.get(goals_id(tenant, "old"))
        if isinstance(e, AgentGoals.ProgressRecorded)
    ]
    assert stored_event.previous_overall is None

    system.runner.catch_up()
    view = json.loads(system.progress.goal_json(tenant, "old") or "{}")
    assert view["progress"]["overall_progress"] == 10.0
    assert view["version"] == event.originator_version
    (entry,) = system.history.history(tenant, "old", after=0, limit=10, action="progress_updated").items
    assert entry["actor"] == "legacy"
    assert entry["data"]["overall_progress"] == 10.0
    assert entry["data"]["previous_overall_progress"] is None


def test_new_progress_events_record_the_previous_overall(system: System, tenant: str) -> None:
    from application.goals import ProgressUpdate

    system.goals.set_goals(tenant, "new", two_objectives(), meta())
    system.goals.record_progress(tenant, ProgressUpdate("new", {"speed": 15}), meta())
    system.goals.record_progress(tenant, ProgressUpdate("new", {"speed": 30}), meta())
    system.runner.catch_up()
    entries = system.history.history(tenant, "new", after=0, limit=10, action="progress_updated").items
    assert [(e["data"]["previous_overall_progress"], e["data"]["overall_progress"]) for e in entries] == [
        (0.0, 10.0),
        (10.0, 20.0),
    ]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        value = {"inner": value}
    return value


def _store_as_v1_goals_set(system: System, tenant: str, agent_id: str, definition: GoalDefinition) -> None:
    """A GoalsSet as versions before the bounds stored it: any JSON in its free-form fields,
    written by eventsourcing's own encoder, with no class_version (read as 1)."""
    goals: AgentGoals = system.goals.repository.get(goals_id(tenant, agent_id))
    goals._trigger(AgentGoals.GoalsSet, meta("legacy"), definition=definition, goal_version=goals.goal_version + 1)
    (event,) = goals.collect_events()
    state = dict(event.__dict__)
    originator_id, version = state.pop("originator_id"), state.pop("originator_version")
    library = JSONTranscoder()
    Application.register_transcodings(None, library)  # type: ignore[arg-type]
    register_domain_transcodings(library)
    stored = StoredEvent(originator_id, version, get_topic(type(event)), library.encode(state))
    system.goals.recorder.insert_events([stored])


def test_a_goal_stored_before_the_bounds_is_read_storable_and_projects(system: System, tenant: str) -> None:
    """kpis nested 300 deep, an integer beyond 64 bits, a NUL: once stored, such an
    event stopped every read model. It is read through the upcaster and projects; the log keeps
    it exactly as it was stored."""
    system.goals.set_goals(tenant, "poisoned", two_objectives(), meta())
    poisoned = replace(
        two_objectives("old"),
        purpose_statement="Triage\x00 tickets",
        kpis=(_nested(300), {"name": "big", "target": 2**70}, "fine"),
    )
    _store_as_v1_goals_set(system, tenant, "poisoned", poisoned)
    system.goals.set_goals(tenant, "bystander", two_objectives(), meta())

    system.runner.catch_up()
    assert {s.state for s in system.runner.statuses()} == {"live"}
    view = json.loads(system.progress.goal_json(tenant, "poisoned") or "{}")
    goals = view["goals"]
    assert goals["purpose_statement"] == "Triage tickets"
    deep = goals["kpis"][0]
    for _ in range(MAX_DEPTH - 1):
        deep = deep["inner"]
    assert deep == {"inner": TOO_DEEP}
    assert goals["kpis"][1:] == [{"name": "big", "target": float(2**70)}, "fine"]
    assert system.progress.goal_json(tenant, "bystander") is not None
    (stored,) = [e for e in system.goals.recorder.select_events(goals_id(tenant, "poisoned")) if e.originator_version == 3]
    assert b'"class_version"' not in stored.state and str(2**70).encode() in stored.state
