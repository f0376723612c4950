"""Schema evolution: a ProgressRecorded v1 stored by the old code still loads and projects."""

from __future__ import annotations

import json

from eventsourcing.persistence import StoredEvent

from domain.goals import AgentGoals
from domain.ids import goals_id
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
