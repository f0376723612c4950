"""Request bodies (interfaces/http/schemas.py): GoalsIn.to_definition and where validation errors point."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.objectives import DEFAULT_MILESTONES, GoalDefinition, Kpi, Objective
from interfaces.http.schemas import AutoUpdateIn, BatchIn, GoalsIn, ProgressIn, StatusIn


def goals_in(primary_objectives: list[Any], **extra: Any) -> GoalsIn:
    return GoalsIn.model_validate(
        {
            "goals": {
                "purpose_statement": "Answer support tickets",
                "primary_objectives": primary_objectives,
                **extra,
            }
        }
    )


def error_locations(exc: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]


# --- to_definition ---------------------------------------------------------------------------


def test_string_objectives_get_ids_derived_from_their_titles() -> None:
    definition = goals_in(["Resolve tickets", "Keep customers happy!", "resolve tickets"]).to_definition()
    assert definition.objectives == (
        Objective("resolve_tickets", "Resolve tickets"),
        Objective("keep_customers_happy", "Keep customers happy!"),
        Objective("resolve_tickets_2", "resolve tickets"),
    )
    assert all(
        o.weight == 1.0 and o.kpi is None and o.milestones == DEFAULT_MILESTONES
        for o in definition.objectives
    )
    assert definition.problems() == {}


def test_object_objectives_keep_their_ids_kpis_weights_and_milestones() -> None:
    definition = goals_in(
        [
            {
                "id": "latency",
                "title": "Keep p95 low",
                "weight": 3,
                "kpi": {
                    "metric": "p95_ms",
                    "unit": "ms",
                    "baseline": 500,
                    "target": 100,
                    "direction": "decrease",
                },
                "milestones": [90, 10, 50, 50],
            },
            {"title": "Answer quickly"},
        ]
    ).to_definition()
    latency, quick = definition.objectives
    assert latency == Objective(
        "latency",
        "Keep p95 low",
        3.0,
        Kpi(metric="p95_ms", target=100.0, baseline=500.0, unit="ms", direction="decrease"),
        (10.0, 50.0, 90.0),
    )
    assert quick == Objective("answer_quickly", "Answer quickly")
    assert quick.milestones == DEFAULT_MILESTONES
    assert isinstance(latency.weight, float)


def test_empty_custom_milestones_fall_back_to_the_defaults() -> None:
    definition = goals_in([{"title": "A", "milestones": []}]).to_definition()
    assert definition.objectives[0].milestones == DEFAULT_MILESTONES


def test_other_fields_are_carried_into_the_definition() -> None:
    body = GoalsIn.model_validate(
        {
            "goals": {
                "purpose_statement": "  Help users  ",
                "primary_objectives": ["A"],
                "success_criteria": ["CSAT above 4.5"],
                "kpis": ["tickets/day", {"name": "csat", "target": 4.5}],
                "version": 3,
            },
            "target_date": "2030-06-30",
        }
    )
    assert body.to_definition() == GoalDefinition(
        purpose_statement="Help users",
        objectives=(Objective("a", "A"),),
        success_criteria=("CSAT above 4.5",),
        kpis=("tickets/day", {"name": "csat", "target": 4.5}),
        label="3",
        target_date="2030-06-30",
    )


def test_without_version_or_target_date_they_stay_unset() -> None:
    definition = goals_in(["A"]).to_definition()
    assert definition.label is None
    assert definition.target_date is None
    assert definition.success_criteria == ()
    assert definition.kpis == ()


def test_a_derived_id_does_not_collide_with_an_explicit_id() -> None:
    """Only the first objective names an id; the second's derived id must not take it."""
    definition = goals_in([{"id": "grow_revenue", "title": "Cut costs"}, "Grow revenue"]).to_definition()
    ids = definition.objective_ids()
    assert ids[0] == "grow_revenue"
    assert len(set(ids)) == 2, ids
    assert definition.problems() == {}


explicit_id = st.sampled_from(["a", "b", "a_2", "grow", "grow_2", "x"])
title = st.sampled_from(["A", "a", "B", "Grow", "grow!", "X", "A 2"])


@settings(database=None)
@given(st.lists(st.tuples(title, st.one_of(st.none(), explicit_id)), min_size=1, max_size=8))
def test_objectives_with_distinct_explicit_ids_always_get_distinct_ids(
    items: list[tuple[str, str | None]],
) -> None:
    explicit = [oid for _, oid in items if oid is not None]
    if len(set(explicit)) != len(explicit):
        return  # a caller who repeats an explicit id gets the duplicate reported, as intended
    raw: list[Any] = [t if oid is None else {"id": oid, "title": t} for t, oid in items]
    definition = goals_in(raw).to_definition()
    ids = definition.objective_ids()
    assert [oid for oid, (_, given_id) in zip(ids, items, strict=True) if given_id is not None] == explicit
    assert len(set(ids)) == len(ids), ids


@settings(database=None)
@given(
    st.lists(
        # any text the edge takes: not NUL, no lone surrogate (those are 422s)
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40)
        .filter(lambda s: s.strip()),
        min_size=1,
        max_size=10,
    )
)
def test_string_objectives_always_yield_a_valid_definition(titles: list[str]) -> None:
    definition = goals_in(titles).to_definition()
    assert len(definition.objectives) == len(titles)
    assert definition.problems() == {}


def test_explicitly_duplicated_ids_are_reported_by_the_definition() -> None:
    definition = goals_in([{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]).to_definition()
    assert set(definition.problems()) == {"goals.primary_objectives.1.id"}


# --- validation error locations --------------------------------------------------------------


def test_empty_primary_objectives_is_located() -> None:
    with pytest.raises(ValidationError) as info:
        goals_in([])
    assert error_locations(info.value) == [("goals", "primary_objectives")]


def test_missing_purpose_is_located() -> None:
    with pytest.raises(ValidationError) as info:
        GoalsIn.model_validate({"goals": {"primary_objectives": ["A"]}})
    assert error_locations(info.value) == [("goals", "purpose_statement")]


def test_blank_purpose_is_located() -> None:
    with pytest.raises(ValidationError) as info:
        GoalsIn.model_validate({"goals": {"purpose_statement": "   ", "primary_objectives": ["A"]}})
    assert error_locations(info.value) == [("goals", "purpose_statement")]


@pytest.mark.parametrize(
    ("objective", "field"),
    [
        ({"title": "A", "weight": 0}, "weight"),
        ({"title": "A", "weight": -2}, "weight"),
        ({"title": "A", "id": "Bad Id"}, "id"),
        ({"title": "A", "milestones": [0]}, "milestones"),
        ({"title": "A", "milestones": [101]}, "milestones"),
        ({"title": "A", "kpi": {"metric": "m"}}, "kpi"),
        ({"title": "A", "kpi": {"metric": "m", "target": 1, "direction": "sideways"}}, "kpi"),
        ({"title": "A", "colour": "red"}, "colour"),
        ({"title": ""}, "title"),
    ],
)
def test_bad_objective_fields_are_located(objective: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        goals_in(["ok", objective])
    object_errors = [loc for loc in error_locations(info.value) if "ObjectiveIn" in loc]
    assert object_errors, error_locations(info.value)
    assert all(loc[:4] == ("goals", "primary_objectives", 1, "ObjectiveIn") for loc in object_errors)
    assert any(loc[4] == field for loc in object_errors), object_errors


def test_unknown_top_level_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        GoalsIn.model_validate({"goals": {"purpose_statement": "p", "primary_objectives": ["A"]}, "extra": 1})
    assert error_locations(info.value) == [("extra",)]


@pytest.mark.parametrize("value", [120, -1, float("nan"), float("inf")])
def test_progress_out_of_range_is_located_at_the_objective(value: float) -> None:
    with pytest.raises(ValidationError) as info:
        ProgressIn.model_validate({"objective_progress": {"o1": 50, "o2": value}})
    assert error_locations(info.value) == [("objective_progress", "o2")]


def test_overall_progress_out_of_range_is_located() -> None:
    with pytest.raises(ValidationError) as info:
        ProgressIn.model_validate({"objective_progress": {"o1": 50}, "overall_progress": 100.5})
    assert error_locations(info.value) == [("overall_progress",)]


def test_a_bad_objective_id_key_is_located() -> None:
    with pytest.raises(ValidationError) as info:
        ProgressIn.model_validate({"objective_progress": {"Not Valid": 50}})
    locations = error_locations(info.value)
    assert locations
    assert all(loc[0] == "objective_progress" for loc in locations)


def test_valid_progress_is_accepted() -> None:
    body = ProgressIn.model_validate({"objective_progress": {"o1": 0, "o2": 100}, "kpi_values": {"o3": -7.5}})
    assert body.objective_progress == {"o1": 0.0, "o2": 100.0}
    assert body.kpi_values == {"o3": -7.5}
    assert body.overall_progress is None


def test_batch_errors_are_located_at_the_update() -> None:
    with pytest.raises(ValidationError) as info:
        BatchIn.model_validate(
            {
                "updates": [
                    {"agent_id": "a1", "objective_progress": {"o1": 5}},
                    {"agent_id": "a2", "objective_progress": {"o1": 500}},
                ]
            }
        )
    assert error_locations(info.value) == [("updates", 1, "objective_progress", "o1")]


def test_status_must_be_a_known_status() -> None:
    with pytest.raises(ValidationError) as info:
        StatusIn.model_validate({"status": "archived"})
    assert error_locations(info.value) == [("status",)]
    assert StatusIn.model_validate({"status": "completed"}).reopen is False


def test_auto_update_interval_is_located() -> None:
    with pytest.raises(ValidationError) as info:
        AutoUpdateIn.model_validate({"interval_s": 1})
    assert error_locations(info.value) == [("interval_s",)]


def test_free_form_kpis_are_texts_or_described_kpis_with_only_known_fields() -> None:
    note = {"name": "csat", "target": 4.5, "unit": "points", "labels": {"team": "support"}}
    definition = goals_in(["A"], kpis=["tickets/day", note]).to_definition()
    assert definition.kpis == ("tickets/day", note)
    assert definition.problems() == {}
    with pytest.raises(ValidationError) as info:
        goals_in(["A"], kpis=[{"name": "csat", "current": {"nested": [1, 2]}}])
    assert ("goals", "kpis", 0, "KpiNoteIn", "current") in error_locations(info.value)
    with pytest.raises(ValidationError) as big:
        goals_in(["A"], kpis=[{"name": "n", "target": 2**70}])
    assert ("goals", "kpis", 0, "KpiNoteIn", "target") in error_locations(big.value)


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"])
def test_texts_the_store_cannot_hold_are_located(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        StatusIn.model_validate({"status": "paused", "reason": text})
    assert error_locations(info.value) == [("reason",)]
