"""What the domain refuses so that the log never holds what a read model cannot store, and
the rules about overall progress: its reserved id, and milestones a revision crosses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.json_encoding import encode_json
from domain.errors import InvalidCommand
from domain.goals import AgentGoals, AutoUpdate
from domain.limits import MAX_OBJECTIVES, OVERALL, note_problems
from domain.meta import Meta
from domain.objectives import GoalDefinition, Kpi, Objective, unique_ids
from projections.views import definition_json

META = Meta("alice", "r-1")


def _start(definition: GoalDefinition) -> AgentGoals:
    goals = AgentGoals.start("acme", "agent-1", definition, META)
    goals.collect_events()
    return goals


def _problems(**fields: Any) -> dict[str, str]:
    values: dict[str, Any] = {"purpose_statement": "p", "objectives": (Objective("o1", "A"),), **fields}
    return GoalDefinition(**values).problems()


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"inner": value}
    return value


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"purpose_statement": "p\x00"}, "goals.purpose_statement"),
        ({"purpose_statement": "p\ud800"}, "goals.purpose_statement"),
        ({"purpose_statement": "p" * 2001}, "goals.purpose_statement"),
        ({"objectives": (Objective("o1", "A\x00B"),)}, "goals.primary_objectives.0.title"),
        ({"objectives": (Objective("o1", "A", weight=1e300),)}, "goals.primary_objectives.0.weight"),
        ({"objectives": (Objective("o1", "A", milestones=(50.0,) * 21),)}, "goals.primary_objectives.0.milestones"),
        ({"objectives": tuple(Objective(f"o{i}", "A") for i in range(MAX_OBJECTIVES + 1))}, "goals.primary_objectives"),
        ({"success_criteria": ("x" * 501,)}, "goals.success_criteria.0"),
        ({"success_criteria": ({"a": [1]},)}, "goals.success_criteria.0"),
        ({"success_criteria": ("ok",) * 51}, "goals.success_criteria"),
        ({"kpis": (_nested(300),)}, "goals.kpis.0.inner"),
        ({"kpis": ({"target": 2**70},)}, "goals.kpis.0.target"),
        ({"kpis": ({"target": float("nan")},)}, "goals.kpis.0.target"),
        ({"kpis": ({"values": list(range(1000))},)}, "goals.kpis.0.values"),
        ({"kpis": ({"name": "x" * 200_000},)}, "goals.kpis.0.name"),
        ({"kpis": ({"bad key": 1},)}, "goals.kpis.0.bad key"),
        ({"kpis": ({f"k{i}": 1 for i in range(21)},)}, "goals.kpis.0"),
        ({"kpis": ("",)}, "goals.kpis.0"),
        ({"label": "v" * 33}, "goals.version"),
        ({"target_date": "2030-02-30"}, "target_date"),
    ],
)
def test_a_definition_the_read_side_could_not_store_names_the_field(fields: dict[str, Any], path: str) -> None:
    assert path in _problems(**fields)


def test_free_form_kpis_may_be_texts_or_flat_objects_with_labels() -> None:
    note = {"name": "csat", "target": 4.5, "unit": "points", "tracked": True, "owner": None,
            "labels": {"team": "support"}}
    assert _problems(kpis=("tickets/day", note)) == {}
    assert note_problems({"labels": {"team": {"nested": "no"}}}) == {"labels": "label team: must be a text"}


def test_overall_is_reserved_and_a_title_named_overall_gets_another_id() -> None:
    assert "goals.primary_objectives.0.id" in _problems(objectives=(Objective(OVERALL, "Overall"),))
    assert unique_ids(["Overall", "Overall"]) == ["overall_2", "overall_3"]


def test_overall_milestones_and_an_objective_titled_overall_do_not_share_keys() -> None:
    ids = unique_ids(["Overall", "Other"])
    goals = _start(GoalDefinition("p", (Objective(ids[0], "Overall"), Objective(ids[1], "Other"))))
    goals.record_progress(META, objective_progress={ids[0]: 50.0})
    reached = {(e.objective_id, e.threshold) for e in goals.collect_events()
               if isinstance(e, AgentGoals.MilestoneReached)}
    assert reached == {(ids[0], 25.0), (ids[0], 50.0), (OVERALL, 25.0)}


def test_a_revision_that_moves_overall_past_thresholds_reaches_them_for_the_new_version() -> None:
    goals = _start(GoalDefinition("p", (Objective("a", "A"), Objective("b", "B"))))
    goals.record_progress(META, objective_progress={"a": 40.0})  # overall 20
    goals.collect_events()
    goals.set_goals(GoalDefinition("p", (Objective("a", "A"),)), META)  # overall 20 -> 40
    events = goals.collect_events()
    assert [type(e) for e in events] == [AgentGoals.GoalsSet, AgentGoals.MilestoneReached]
    reached = events[1]
    assert isinstance(reached, AgentGoals.MilestoneReached)
    assert (reached.goal_version, reached.objective_id, reached.threshold) == (2, OVERALL, 25.0)
    assert goals.milestone_reached(2, OVERALL, 25.0)


def test_a_revision_that_lowers_overall_reaches_nothing() -> None:
    goals = _start(GoalDefinition("p", (Objective("a", "A"),)))
    goals.record_progress(META, objective_progress={"a": 40.0})
    goals.collect_events()
    goals.set_goals(GoalDefinition("p", (Objective("a", "A"), Objective("b", "B"))), META)
    assert [type(e) for e in goals.collect_events()] == [AgentGoals.GoalsSet]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e16, -1e300])
def test_a_kpi_value_that_is_not_a_bounded_number_is_refused(value: float) -> None:
    goals = _start(GoalDefinition("p", (Objective("a", "A", kpi=Kpi("m", target=10.0)),)))
    with pytest.raises(InvalidCommand) as info:
        goals.record_progress(META, kpi_values={"a": value})
    assert set(info.value.errors) == {"kpi_values.a"}


def test_an_observation_from_the_future_is_refused_but_a_fast_clock_is_forgiven() -> None:
    goals = _start(GoalDefinition("p", (Objective("a", "A"),)))
    now = datetime.now(UTC)
    with pytest.raises(InvalidCommand) as info:
        goals.record_progress(META, objective_progress={"a": 1.0}, observed_at=now + timedelta(days=365))
    assert set(info.value.errors) == {"observed_at"}
    with pytest.raises(InvalidCommand):
        goals.record_progress(META, objective_progress={"a": 1.0}, observed_at=datetime(1969, 1, 1, tzinfo=UTC))
    goals.record_progress(META, objective_progress={"a": 1.0}, observed_at=now + timedelta(minutes=1))
    assert goals.last_updated == now + timedelta(minutes=1)


def test_a_status_reason_and_auto_update_texts_are_checked() -> None:
    goals = _start(GoalDefinition("p", (Objective("a", "A"),)))
    with pytest.raises(InvalidCommand) as info:
        goals.change_status("paused", "why\x00", META)
    assert set(info.value.errors) == {"reason"}
    config = AutoUpdate(True, 100_000, "http://agent/\ud800", None, {"a": ""})
    with pytest.raises(InvalidCommand) as refused:
        goals.configure_auto_update(config, META)
    assert set(refused.value.errors) == {"interval_s", "health_url", "kpi_metrics.a"}


# Whatever the domain accepts, the read side can encode: any text, any number, any free-form
# KPI the strategies draw is either refused by the domain or encoded by the shared encoder.
_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20), st.integers(), st.floats(allow_nan=True)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    purpose=st.text(max_size=40),
    title=st.text(min_size=1, max_size=20),
    kpis=st.lists(st.one_of(st.text(max_size=20), st.dictionaries(st.text(max_size=8), _json, max_size=4)), max_size=3),
    target=st.floats(allow_nan=True, allow_infinity=True),
)
def test_what_the_domain_accepts_the_shared_encoder_encodes(
    purpose: str, title: str, kpis: list[Any], target: float
) -> None:
    definition = GoalDefinition(
        purpose, (Objective("a", title, kpi=Kpi("m", target=target)),), kpis=tuple(kpis)
    )
    if definition.problems():
        return
    encode_json(definition_json(definition))
