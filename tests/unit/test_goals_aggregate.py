"""The AgentGoals aggregate (domain/goals.py): derived progress, validation, status, milestones,
metadata on events, and replay of its own events."""

from __future__ import annotations

import copy
import functools
import itertools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import DomainError, GoalNotActive, InvalidCommand, TransitionRefused
from domain.goals import AgentGoals, AutoUpdate
from domain.ids import goals_id
from domain.limits import OVERALL
from domain.meta import Meta
from domain.objectives import DEFAULT_MILESTONES, GoalDefinition, Kpi, Objective
from domain.status import Status

TENANT = "acme"
ALLOWED = {("active", "paused"), ("paused", "active"), ("active", "completed"), ("active", "cancelled")}
ALLOWED |= {("paused", "cancelled")}

two_decimal_percent = st.integers(min_value=0, max_value=10_000).map(lambda n: n / 100)


def new_agent_id() -> str:
    return f"agent-{uuid.uuid4().hex[:12]}"


def definition(*objectives: Objective, purpose: str = "Answer support tickets") -> GoalDefinition:
    return GoalDefinition(purpose, objectives or (Objective("o1", "Resolve tickets"),))


def start(goals_definition: GoalDefinition | None = None, meta: Meta | None = None) -> AgentGoals:
    return AgentGoals.start(
        TENANT, new_agent_id(), goals_definition or definition(), meta or Meta("alice", "r-1")
    )


def milestones(events: Sequence[object]) -> list[tuple[int, str, float]]:
    return [
        (e.goal_version, e.objective_id, e.threshold)
        for e in events
        if isinstance(e, AgentGoals.MilestoneReached)
    ]


def replay(events: Sequence[Any]) -> AgentGoals:
    aggregate = functools.reduce(lambda a, e: e.mutate(a), events, None)
    assert isinstance(aggregate, AgentGoals)
    return aggregate


def state(goals: AgentGoals) -> dict[str, Any]:
    return {k: v for k, v in vars(goals).items() if k != "_pending_events"}


# --- start and goals -------------------------------------------------------------------------


def test_start_registers_the_agent_with_its_first_goals() -> None:
    agent_id = new_agent_id()
    goals_def = definition(Objective("o1", "A"), Objective("o2", "B"))
    goals = AgentGoals.start(TENANT, agent_id, goals_def, Meta("alice", "r-1"))
    events = goals.collect_events()
    assert [type(e) for e in events] == [AgentGoals.Registered, AgentGoals.GoalsSet]
    assert goals.id == goals_id(TENANT, agent_id)
    assert goals.tenant == TENANT
    assert goals.agent_id == agent_id
    assert goals.created_by == "alice"
    assert goals.status == "active"
    assert goals.definition == goals_def
    assert goals.goal_version == 1
    assert goals.overall_progress == 0.0
    assert goals.objective_progress == {}
    assert goals.milestones == {}


def test_the_same_agent_in_two_tenants_gets_two_aggregates() -> None:
    a = AgentGoals.start("t1", "agent", definition(), Meta("x"))
    b = AgentGoals.start("t2", "agent", definition(), Meta("x"))
    assert a.id != b.id


def test_start_with_invalid_goals_raises_naming_the_fields() -> None:
    with pytest.raises(InvalidCommand) as info:
        AgentGoals.start(TENANT, new_agent_id(), GoalDefinition(" ", ()), Meta("alice"))
    assert set(info.value.errors) == {"goals.purpose_statement", "goals.primary_objectives"}


def test_revising_goals_with_problems_is_refused_and_changes_nothing() -> None:
    goals = start()
    goals.collect_events()
    bad = definition(Objective("o1", "A"), Objective("o1", "B"))
    with pytest.raises(InvalidCommand) as info:
        goals.set_goals(bad, Meta("bob"))
    assert "goals.primary_objectives.1.id" in info.value.errors
    assert goals.collect_events() == []
    assert goals.goal_version == 1


def test_revising_goals_increments_goal_version_and_keeps_progress_of_kept_objectives() -> None:
    goals = start(definition(Objective("a", "A"), Objective("b", "B")))
    goals.record_progress(Meta("alice"), objective_progress={"a": 40.0, "b": 80.0})
    assert goals.overall_progress == 60.0
    goals.set_goals(definition(Objective("a", "A"), Objective("c", "C")), Meta("bob"))
    assert goals.goal_version == 2
    assert goals.objective_progress == {"a": 40.0}
    assert goals.overall_progress == 20.0
    set_events = [e for e in goals.collect_events() if isinstance(e, AgentGoals.GoalsSet)]
    assert [e.goal_version for e in set_events] == [1, 2]


# --- progress: derived overall and validation ------------------------------------------------


def test_overall_progress_is_the_weighted_mean_with_missing_objectives_at_zero() -> None:
    goals = start(definition(Objective("a", "A", weight=3.0), Objective("b", "B", weight=1.0)))
    goals.record_progress(Meta("alice"), objective_progress={"a": 100.0})
    assert goals.overall_progress == 75.0
    goals.record_progress(Meta("alice"), objective_progress={"b": 40.0})
    assert goals.objective_progress == {"a": 100.0, "b": 40.0}
    assert goals.overall_progress == 85.0
    recorded = [e for e in goals.collect_events() if isinstance(e, AgentGoals.ProgressRecorded)]
    assert [e.overall_progress for e in recorded] == [75.0, 85.0]
    assert [e.objective_progress for e in recorded] == [{"a": 100.0}, {"b": 40.0}]
    assert goals.update_count == 2


def test_an_overall_progress_that_agrees_with_the_derived_one_is_accepted() -> None:
    goals = start(definition(Objective("a", "A"), Objective("b", "B"), Objective("c", "C")))
    goals.record_progress(Meta("alice"), objective_progress={"a": 100.0}, overall_progress=100 / 3)
    assert goals.overall_progress == 33.33


def test_an_overall_progress_that_disagrees_is_refused_stating_the_derived_value() -> None:
    goals = start(definition(Objective("a", "A", weight=3.0), Objective("b", "B", weight=1.0)))
    goals.collect_events()
    with pytest.raises(InvalidCommand) as info:
        goals.record_progress(Meta("alice"), objective_progress={"a": 100.0}, overall_progress=90.0)
    assert set(info.value.errors) == {"overall_progress"}
    assert "75.0" in info.value.errors["overall_progress"]
    assert "overall_progress" in str(info.value)
    assert goals.collect_events() == []
    assert goals.overall_progress == 0.0
    assert goals.objective_progress == {}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"objective_progress": {"nope": 10.0}}, "objective_progress.nope"),
        ({"objective_progress": {"o1": 120.0}}, "objective_progress.o1"),
        ({"objective_progress": {"o1": -0.5}}, "objective_progress.o1"),
        ({"objective_progress": {"o1": float("nan")}}, "objective_progress.o1"),
        ({"objective_progress": {"o1": float("inf")}}, "objective_progress.o1"),
        ({"kpi_values": {"o1": 3.0}}, "kpi_values.o1"),
        ({"kpi_values": {"nope": 3.0}}, "kpi_values.nope"),
        ({}, "objective_progress"),
        ({"objective_progress": {"o1": 10.0}, "source": "guess"}, "source"),
    ],
)
def test_invalid_progress_is_refused_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    goals = start()
    goals.collect_events()
    with pytest.raises(InvalidCommand) as info:
        goals.record_progress(Meta("alice"), **kwargs)
    assert field in info.value.errors
    assert goals.collect_events() == []
    assert goals.objective_progress == {}
    assert goals.update_count == 0


def test_every_bad_field_is_reported_at_once() -> None:
    goals = start(definition(Objective("a", "A"), Objective("b", "B")))
    with pytest.raises(InvalidCommand) as info:
        goals.record_progress(Meta("alice"), objective_progress={"a": 101.0, "zzz": 5.0, "b": 5.0})
    assert set(info.value.errors) == {"objective_progress.a", "objective_progress.zzz"}


@pytest.mark.parametrize("boundary", [0.0, 100.0])
def test_progress_boundaries_are_accepted(boundary: float) -> None:
    goals = start()
    goals.record_progress(Meta("alice"), objective_progress={"o1": boundary})
    assert goals.objective_progress == {"o1": boundary}


@pytest.mark.parametrize(
    ("kpi", "value", "expected"),
    [
        (Kpi("p95_ms", baseline=500.0, target=100.0, direction="decrease", unit="ms"), 300.0, 50.0),
        (Kpi("p95_ms", baseline=500.0, target=100.0, direction="decrease", unit="ms"), 900.0, 0.0),
        (Kpi("signups", target=200.0), 50.0, 25.0),
        (Kpi("signups", target=200.0), 1000.0, 100.0),
    ],
)
def test_kpi_values_convert_to_objective_progress(kpi: Kpi, value: float, expected: float) -> None:
    goals = start(definition(Objective("o1", "KPI objective", kpi=kpi), Objective("o2", "Other")))
    goals.record_progress(Meta("alice"), kpi_values={"o1": value})
    assert goals.objective_progress == {"o1": expected}
    assert goals.kpi_values == {"o1": value}
    assert goals.overall_progress == expected / 2
    recorded = [e for e in goals.collect_events() if isinstance(e, AgentGoals.ProgressRecorded)]
    assert recorded[0].objective_progress == {"o1": expected}
    assert recorded[0].kpi_values == {"o1": value}


def test_kpi_value_milestones_fire_from_the_converted_progress() -> None:
    kpi = Kpi("p95_ms", baseline=500.0, target=100.0, direction="decrease")
    goals = start(definition(Objective("o1", "Latency", kpi=kpi)))
    goals.collect_events()
    goals.record_progress(Meta("alice"), kpi_values={"o1": 300.0})
    assert milestones(goals.collect_events()) == [
        (1, "o1", 25.0),
        (1, "o1", 50.0),
        (1, OVERALL, 25.0),
        (1, OVERALL, 50.0),
    ]


# --- status ----------------------------------------------------------------------------------

PATH_TO: dict[str, list[str]] = {
    "active": [],
    "paused": ["paused"],
    "completed": ["completed"],
    "cancelled": ["cancelled"],
}


def goals_in(status: str) -> AgentGoals:
    goals = start()
    for step in PATH_TO[status]:
        goals.change_status(step, "setup", Meta("alice"))
    goals.collect_events()
    assert goals.status == status
    return goals


@pytest.mark.parametrize(("current", "target"), list(itertools.product(PATH_TO, PATH_TO)))
def test_status_changes_follow_the_machine(current: str, target: str) -> None:
    goals = goals_in(current)
    if (current, target) in ALLOWED:
        goals.change_status(target, "because", Meta("bob", "r-9"))
        assert goals.status == target
        [event] = goals.collect_events()
        assert isinstance(event, AgentGoals.StatusChanged)
        assert (event.from_status, event.to_status, event.reason) == (current, target, "because")
    else:
        with pytest.raises(TransitionRefused) as info:
            goals.change_status(target, "because", Meta("bob"))
        assert (info.value.from_status, info.value.to_status) == (current, target)
        assert goals.status == current
        assert goals.collect_events() == []


@pytest.mark.parametrize("closed", ["completed", "cancelled"])
def test_a_closed_goal_reopens_only_with_the_flag(closed: str) -> None:
    goals = goals_in(closed)
    with pytest.raises(TransitionRefused):
        goals.change_status("active", "again", Meta("bob"))
    goals.change_status("active", "again", Meta("bob"), reopen=True)
    assert goals.status == "active"
    goals.record_progress(Meta("bob"), objective_progress={"o1": 10.0})
    assert goals.objective_progress == {"o1": 10.0}


@pytest.mark.parametrize("target", ["paused", "completed", "cancelled"])
def test_reopen_does_not_move_a_closed_goal_anywhere_but_active(target: str) -> None:
    for closed in ("completed", "cancelled"):
        goals = goals_in(closed)
        with pytest.raises(TransitionRefused):
            goals.change_status(target, "x", Meta("bob"), reopen=True)


def test_an_unknown_status_is_invalid() -> None:
    goals = start()
    with pytest.raises(InvalidCommand) as info:
        goals.change_status("archived", "x", Meta("bob"))
    assert set(info.value.errors) == {"status"}


@pytest.mark.parametrize("status", ["paused", "completed", "cancelled"])
def test_progress_on_a_goal_that_is_not_active_is_refused(status: str) -> None:
    goals = goals_in(status)
    with pytest.raises(GoalNotActive) as info:
        goals.record_progress(Meta("alice"), objective_progress={"o1": 50.0})
    assert info.value.status == status
    assert info.value.agent_id == goals.agent_id
    assert goals.collect_events() == []
    assert goals.objective_progress == {}


def test_a_resumed_goal_takes_progress_again() -> None:
    goals = goals_in("paused")
    goals.change_status("active", "back", Meta("alice"))
    goals.record_progress(Meta("alice"), objective_progress={"o1": 50.0})
    assert goals.overall_progress == 50.0


# --- milestones ------------------------------------------------------------------------------


def test_milestones_are_in_the_same_batch_after_the_progress_that_crossed_them() -> None:
    goals = start(definition(Objective("o1", "A")))
    goals.collect_events()
    goals.record_progress(Meta("alice", "r-2"), objective_progress={"o1": 60.0})
    batch = goals.collect_events()
    assert isinstance(batch[0], AgentGoals.ProgressRecorded)
    assert all(isinstance(e, AgentGoals.MilestoneReached) for e in batch[1:])
    assert milestones(batch) == [(1, "o1", 25.0), (1, "o1", 50.0), (1, OVERALL, 25.0), (1, OVERALL, 50.0)]
    assert all(e.progress == 60.0 for e in batch[1:] if isinstance(e, AgentGoals.MilestoneReached))
    assert goals.milestone_reached(1, "o1", 50.0)
    assert not goals.milestone_reached(1, "o1", 75.0)


def test_a_threshold_is_reached_when_progress_lands_exactly_on_it() -> None:
    goals = start()
    goals.record_progress(Meta("alice"), objective_progress={"o1": 25.0})
    assert (1, "o1", 25.0) in milestones(goals.collect_events())
    goals.record_progress(Meta("alice"), objective_progress={"o1": 25.0})
    assert milestones(goals.collect_events()) == []


def test_going_down_and_up_again_does_not_repeat_a_milestone() -> None:
    goals = start()
    goals.collect_events()
    goals.record_progress(Meta("alice"), objective_progress={"o1": 60.0})
    assert milestones(goals.collect_events()) == [
        (1, "o1", 25.0),
        (1, "o1", 50.0),
        (1, OVERALL, 25.0),
        (1, OVERALL, 50.0),
    ]
    goals.record_progress(Meta("alice"), objective_progress={"o1": 10.0})
    assert milestones(goals.collect_events()) == []
    goals.record_progress(Meta("alice"), objective_progress={"o1": 80.0})
    assert milestones(goals.collect_events()) == [(1, "o1", 75.0), (1, OVERALL, 75.0)]


def test_custom_milestone_thresholds_are_honoured() -> None:
    goals = start(definition(Objective("o1", "A", milestones=(10.0, 33.0, 99.5))))
    goals.collect_events()
    goals.record_progress(Meta("alice"), objective_progress={"o1": 40.0})
    assert milestones(goals.collect_events()) == [(1, "o1", 10.0), (1, "o1", 33.0), (1, OVERALL, 25.0)]
    goals.record_progress(Meta("alice"), objective_progress={"o1": 99.5})
    assert milestones(goals.collect_events()) == [
        (1, "o1", 99.5),
        (1, OVERALL, 50.0),
        (1, OVERALL, 75.0),
        (1, OVERALL, 90.0),
    ]


def test_overall_milestones_follow_the_weighted_overall() -> None:
    goals = start(definition(Objective("a", "A", weight=1.0), Objective("b", "B", weight=3.0)))
    goals.collect_events()
    goals.record_progress(Meta("alice"), objective_progress={"a": 100.0})
    assert milestones(goals.collect_events()) == [
        (1, "a", 25.0),
        (1, "a", 50.0),
        (1, "a", 75.0),
        (1, "a", 90.0),
        (1, "a", 100.0),
        (1, OVERALL, 25.0),
    ]


def test_milestones_fire_again_for_a_revised_goal_version() -> None:
    goals_def = definition(Objective("o1", "A"))
    goals = start(goals_def)
    goals.record_progress(Meta("alice"), objective_progress={"o1": 60.0})
    goals.set_goals(goals_def, Meta("bob"))
    assert goals.goal_version == 2
    goals.collect_events()
    goals.record_progress(Meta("alice"), objective_progress={"o1": 10.0})
    goals.record_progress(Meta("alice"), objective_progress={"o1": 60.0})
    assert milestones(goals.collect_events()) == [
        (2, "o1", 25.0),
        (2, "o1", 50.0),
        (2, OVERALL, 25.0),
        (2, OVERALL, 50.0),
    ]
    assert goals.milestone_reached(1, "o1", 50.0)
    assert goals.milestone_reached(2, "o1", 50.0)


@st.composite
def milestone_scenario(draw: st.DrawFn) -> tuple[GoalDefinition, list[dict[str, float]]]:
    custom = tuple(
        sorted(set(draw(st.lists(two_decimal_percent.filter(lambda t: t > 0), min_size=1, max_size=6))))
    )
    objectives = (
        Objective("a", "A", weight=draw(st.integers(1, 5)), milestones=custom),
        Objective("b", "B", weight=draw(st.integers(1, 5))),
    )
    steps = draw(
        st.lists(
            st.dictionaries(st.sampled_from(["a", "b"]), two_decimal_percent, min_size=1),
            min_size=1,
            max_size=15,
        )
    )
    return GoalDefinition("p", objectives), steps


@settings(max_examples=150, deadline=None, database=None)
@given(milestone_scenario())
def test_each_threshold_fires_once_and_exactly_those_up_to_the_maximum_reached(
    scenario: tuple[GoalDefinition, list[dict[str, float]]],
) -> None:
    goals_def, steps = scenario
    goals = start(goals_def)
    events: list[object] = list(goals.collect_events())
    peak: dict[str, float] = {"a": 0.0, "b": 0.0, OVERALL: 0.0}
    for step in steps:
        goals.record_progress(Meta("alice"), objective_progress=step)
        batch = goals.collect_events()
        # What crossed a threshold is saved with the progress that crossed it.
        assert isinstance(batch[0], AgentGoals.ProgressRecorded)
        assert all(isinstance(e, AgentGoals.MilestoneReached) for e in batch[1:])
        events.extend(batch)
        for oid, value in step.items():
            peak[oid] = max(peak[oid], value)
        peak[OVERALL] = max(peak[OVERALL], goals.overall_progress)
    reached = milestones(events)
    assert len(reached) == len(set(reached)), "a milestone fired twice"
    thresholds = {
        "a": goals_def.objectives[0].milestones,
        "b": DEFAULT_MILESTONES,
        OVERALL: DEFAULT_MILESTONES,
    }
    for oid, ts in thresholds.items():
        assert sorted(t for v, o, t in reached if o == oid) == sorted(t for t in ts if t <= peak[oid]), oid
    assert all(v == 1 for v, _, _ in reached)


@settings(max_examples=50, deadline=None, database=None)
@given(
    st.lists(two_decimal_percent, min_size=1, max_size=8),
    st.lists(two_decimal_percent, min_size=1, max_size=8),
)
def test_each_goal_version_gets_its_own_milestones(first: list[float], second: list[float]) -> None:
    goals_def = definition(Objective("o1", "A"))
    goals = start(goals_def)
    for value in first:
        goals.record_progress(Meta("alice"), objective_progress={"o1": value})
    goals.set_goals(goals_def, Meta("bob"))
    goals.record_progress(Meta("alice"), objective_progress={"o1": 0.0})
    for value in second:
        goals.record_progress(Meta("alice"), objective_progress={"o1": value})
    reached = milestones(goals.collect_events())
    assert len(reached) == len(set(reached))
    for version, values in ((1, first), (2, second)):
        got = sorted(t for v, o, t in reached if v == version and o == "o1")
        assert got == [t for t in DEFAULT_MILESTONES if t <= max(values)]


# --- metadata --------------------------------------------------------------------------------


def test_every_event_carries_tenant_agent_and_the_meta_of_its_command() -> None:
    agent_id = new_agent_id()
    m1, m2, m3, m4 = (
        Meta("alice", "r-1", "k-1"),
        Meta("bob", "r-2"),
        Meta("carol", "r-3", "k-3"),
        Meta("dave", "r-4"),
    )
    goals = AgentGoals.start("tenant-x", agent_id, definition(Objective("o1", "A")), m1)
    expected: list[Meta] = [m1, m1]
    goals.record_progress(m2, objective_progress={"o1": 100.0})
    expected += [m2] * 11  # progress, five objective milestones, five overall milestones
    goals.change_status("paused", "lunch", m3)
    expected.append(m3)
    goals.configure_auto_update(AutoUpdate(True, 60, None, None, {}), m4)
    expected.append(m4)
    events: Sequence[Any] = goals.collect_events()
    assert len(events) == len(expected)
    for event, meta in zip(events, expected, strict=True):
        assert event.tenant == "tenant-x"
        assert event.agent_id == agent_id
        assert event.actor == meta.actor
        assert event.request_id == meta.request_id
        assert event.idempotency_key == meta.idempotency_key


# --- auto update -----------------------------------------------------------------------------


def test_configure_auto_update_records_the_config() -> None:
    goals = start(definition(Objective("o1", "A"), Objective("o2", "B")))
    config = AutoUpdate(True, 30, "http://agent/health", "http://agent/metrics", {"o1": "tickets_resolved"})
    goals.configure_auto_update(config, Meta("ops"))
    assert goals.auto_update == config
    assert isinstance(goals.collect_events()[-1], AgentGoals.AutoUpdateConfigured)


def test_configure_auto_update_rejects_unknown_objective_ids() -> None:
    goals = start(definition(Objective("o1", "A")))
    goals.collect_events()
    config = AutoUpdate(True, 30, None, "http://agent/metrics", {"o1": "m1", "zz": "m2", "aa": "m3"})
    with pytest.raises(InvalidCommand) as info:
        goals.configure_auto_update(config, Meta("ops"))
    assert set(info.value.errors) == {"kpi_metrics"}
    assert "aa, zz" in info.value.errors["kpi_metrics"]
    assert goals.auto_update is None
    assert goals.collect_events() == []


def test_configure_auto_update_rejects_short_intervals() -> None:
    goals = start()
    with pytest.raises(InvalidCommand) as info:
        goals.configure_auto_update(AutoUpdate(True, 4, None, None, {}), Meta("ops"))
    assert set(info.value.errors) == {"interval_s"}


# --- replay ----------------------------------------------------------------------------------

commands = st.one_of(
    st.tuples(
        st.just("progress"), st.dictionaries(st.sampled_from(["a", "b", "k", "x"]), st.floats(-10, 110))
    ),
    st.tuples(st.just("kpi"), st.floats(0, 1000)),
    st.tuples(st.just("status"), st.sampled_from([s.value for s in Status]), st.booleans()),
    st.tuples(st.just("revise"), st.sets(st.sampled_from(["a", "b", "c"]))),
    st.tuples(st.just("auto"), st.integers(1, 100), st.sets(st.sampled_from(["a", "b", "x"]))),
)

OBJECTIVES = {
    "a": Objective("a", "A", weight=2.0, milestones=(10.0, 60.0)),
    "b": Objective("b", "B"),
    "c": Objective("c", "C", weight=0.5),
    "k": Objective("k", "K", kpi=Kpi("p95", baseline=500.0, target=100.0, direction="decrease")),
}


def run(goals: AgentGoals, command: tuple[Any, ...], meta: Meta) -> None:
    kind = command[0]
    if kind == "progress":
        goals.record_progress(meta, objective_progress=command[1])
    elif kind == "kpi":
        goals.record_progress(meta, kpi_values={"k": command[1]})
    elif kind == "status":
        goals.change_status(command[1], "r", meta, reopen=command[2])
    elif kind == "revise":
        ids = sorted(command[1] | {"k"})
        goals.set_goals(GoalDefinition("revised", tuple(OBJECTIVES[i] for i in ids)), meta)
    else:
        goals.configure_auto_update(
            AutoUpdate(True, command[1], None, None, {i: "m" for i in command[2]}), meta
        )


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(commands, max_size=25))
def test_replaying_the_collected_events_gives_the_live_state(script: list[tuple[Any, ...]]) -> None:
    goals = start(GoalDefinition("p", (OBJECTIVES["a"], OBJECTIVES["b"], OBJECTIVES["k"])))
    events: list[Any] = list(goals.collect_events())
    for n, command in enumerate(script):
        try:
            run(goals, command, Meta(f"actor-{n}", f"r-{n}"))
        except DomainError:
            assert goals.collect_events() == [], "a refused command must not leave events behind"
        events.extend(goals.collect_events())
        assert state(replay(events)) == state(goals)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))


# --- the copy the aggregate cache hands out --------------------------------------------------


def test_a_command_on_a_copy_leaves_the_original_exactly_as_it_was() -> None:
    original = start(definition(Objective("o1", "Resolve"), Objective("o2", "Answer")))
    original.record_progress(Meta("bob", "r-2"), objective_progress={"o1": 30.0})
    original.configure_auto_update(
        AutoUpdate(True, 60, None, "http://agent.example/metrics", {}), Meta("bob", "r-3")
    )
    original.collect_events()
    before = copy.deepcopy(state(original))

    twin = copy.deepcopy(original)
    twin.record_progress(Meta("carol", "r-4"), objective_progress={"o1": 80.0, "o2": 60.0})
    twin.change_status("paused", "maintenance", Meta("carol", "r-5"))
    twin.set_goals(definition(Objective("o1", "Resolve")), Meta("carol", "r-6"))
    for record in twin.milestones.values():
        record["mutated"] = True

    assert state(original) == before
    assert original.collect_events() == []
    assert state(twin) != before


def test_the_copy_shares_no_mutable_container_with_the_original() -> None:
    """Guards the hand-written copy: a mutable attribute added later must be copied too."""
    original = start()
    original.record_progress(Meta("bob", "r-2"), objective_progress={"o1": 60.0})
    twin = copy.deepcopy(original)
    for name, value in vars(original).items():
        if isinstance(value, (dict, list, set)):
            assert getattr(twin, name) is not value, name
            if name == "milestones":
                assert all(twin.milestones[k] is not v for k, v in value.items())
        else:
            assert isinstance(value, (str, int, float, bool, type(None), uuid.UUID, datetime)) or _frozen(
                value
            ), name


def _frozen(value: object) -> bool:
    params = getattr(value, "__dataclass_params__", None)
    return bool(params is not None and params.frozen)
