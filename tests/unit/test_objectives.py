"""Progress arithmetic, KPI rules, milestone crossing and objective ids (domain/objectives.py)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.objectives import (
    DEFAULT_MILESTONES,
    GoalDefinition,
    Kpi,
    Objective,
    crossed,
    slug,
    unique_ids,
    weighted_overall,
)

# The id pattern the HTTP layer accepts for objective ids (ProgressIn keys, ObjectiveIn.id).
OBJECTIVE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
percent = st.floats(min_value=0, max_value=100, allow_nan=False)
weight = st.floats(min_value=0.01, max_value=1000, allow_nan=False)


def has_two_decimals(value: float) -> bool:
    return round(value, 2) == value


# --- Kpi.progress ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kpi", "value", "expected"),
    [
        (Kpi("signups", target=100.0), 0.0, 0.0),
        (Kpi("signups", target=100.0), 50.0, 50.0),
        (Kpi("signups", target=100.0), 100.0, 100.0),
        (Kpi("signups", target=100.0), 150.0, 100.0),
        (Kpi("signups", target=100.0), -20.0, 0.0),
        (Kpi("revenue", baseline=200.0, target=600.0), 300.0, 25.0),
        (Kpi("latency", baseline=500.0, target=100.0, direction="decrease"), 300.0, 50.0),
        (Kpi("latency", baseline=500.0, target=100.0, direction="decrease"), 500.0, 0.0),
        (Kpi("latency", baseline=500.0, target=100.0, direction="decrease"), 100.0, 100.0),
        (Kpi("latency", baseline=500.0, target=100.0, direction="decrease"), 50.0, 100.0),
        (Kpi("latency", baseline=500.0, target=100.0, direction="decrease"), 800.0, 0.0),
        (Kpi("errors", baseline=3.0, target=0.0, direction="decrease"), 1.0, 66.67),
    ],
)
def test_kpi_progress_examples(kpi: Kpi, value: float, expected: float) -> None:
    assert kpi.progress(value) == expected


@settings(database=None)
@given(baseline=finite, span=st.floats(min_value=0.001, max_value=1e6), fraction=st.floats(0, 1))
def test_increase_kpi_progress_is_linear_from_baseline_to_target(
    baseline: float, span: float, fraction: float
) -> None:
    kpi = Kpi("m", target=baseline + span, baseline=baseline, direction="increase")
    assume(kpi.target > kpi.baseline)
    value = baseline + fraction * span
    expected = (value - baseline) / (kpi.target - baseline) * 100
    assert kpi.progress(value) == pytest.approx(min(100.0, max(0.0, expected)), abs=0.006)


@settings(database=None)
@given(baseline=finite, span=st.floats(min_value=0.001, max_value=1e6), fraction=st.floats(0, 1))
def test_decrease_kpi_progress_is_linear_from_baseline_to_target(
    baseline: float, span: float, fraction: float
) -> None:
    kpi = Kpi("m", target=baseline - span, baseline=baseline, direction="decrease")
    assume(kpi.target < kpi.baseline)
    value = baseline - fraction * span
    expected = (baseline - value) / (baseline - kpi.target) * 100
    assert kpi.progress(value) == pytest.approx(min(100.0, max(0.0, expected)), abs=0.006)


@settings(database=None)
@given(
    baseline=finite,
    span=st.floats(min_value=0.001, max_value=1e6),
    direction=st.sampled_from(["increase", "decrease"]),
    value=st.floats(allow_nan=False),
)
def test_kpi_progress_is_clamped_to_percent_with_two_decimals(
    baseline: float, span: float, direction: str, value: float
) -> None:
    target = baseline + span if direction == "increase" else baseline - span
    kpi = Kpi(
        "m", target=target, baseline=baseline, direction="increase" if direction == "increase" else "decrease"
    )
    progress = kpi.progress(value)
    assert 0.0 <= progress <= 100.0
    assert has_two_decimals(progress)


@settings(database=None)
@given(
    baseline=finite,
    span=st.floats(min_value=0.001, max_value=1e6),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
)
def test_kpi_progress_moves_with_the_direction(baseline: float, span: float, a: float, b: float) -> None:
    """A better value never yields less progress, in either direction."""
    low, high = sorted((a, b))
    up = Kpi("m", target=baseline + span, baseline=baseline)
    down = Kpi("m", target=baseline - span, baseline=baseline, direction="decrease")
    assert up.progress(baseline + low * span) <= up.progress(baseline + high * span)
    assert down.progress(baseline - low * span) <= down.progress(baseline - high * span)


# --- Kpi.problems ----------------------------------------------------------------------------


def test_valid_kpis_have_no_problems() -> None:
    assert Kpi("signups", target=100.0).problems() == {}
    assert Kpi("latency", baseline=500.0, target=100.0, direction="decrease").problems() == {}


@pytest.mark.parametrize(
    "kpi",
    [
        Kpi("m", baseline=100.0, target=100.0, direction="increase"),
        Kpi("m", baseline=100.0, target=50.0, direction="increase"),
        Kpi("m", baseline=100.0, target=100.0, direction="decrease"),
        Kpi("m", baseline=100.0, target=150.0, direction="decrease"),
    ],
)
def test_kpi_with_target_on_the_wrong_side_is_a_problem(kpi: Kpi) -> None:
    problems = kpi.problems()
    assert set(problems) == {"target"}


@pytest.mark.parametrize(
    ("kpi", "field"),
    [
        (Kpi("m", baseline=0.0, target=math.inf), "target"),
        (Kpi("m", baseline=math.nan, target=10.0), "baseline"),
        # a span of 2e308 is infinite: progress would be 0 whatever the value
        (Kpi("m", baseline=-1e308, target=10.0), "baseline"),
        (Kpi("m", baseline=0.0, target=1e16), "target"),
        (Kpi("", target=10.0), "metric"),
        (Kpi("m\x00", target=10.0), "metric"),
        (Kpi("m", target=10.0, unit="\ud800"), "unit"),
    ],
)
def test_kpi_with_a_number_or_text_it_cannot_keep_names_the_field(kpi: Kpi, field: str) -> None:
    assert set(kpi.problems()) == {field}


def test_kpi_problem_names_the_baseline_and_direction() -> None:
    message = Kpi("m", baseline=100.0, target=50.0).problems()["target"]
    assert "above baseline 100.0" in message
    assert "increase" in message
    message = Kpi("m", baseline=100.0, target=150.0, direction="decrease").problems()["target"]
    assert "below baseline 100.0" in message
    assert "decrease" in message


# --- weighted_overall ------------------------------------------------------------------------


def test_weighted_overall_is_the_weighted_mean() -> None:
    objectives = [Objective("a", "A", weight=3.0), Objective("b", "B", weight=1.0)]
    assert weighted_overall(objectives, {"a": 100.0, "b": 0.0}) == 75.0
    assert weighted_overall(objectives, {"a": 40.0, "b": 80.0}) == 50.0


def test_weighted_overall_counts_a_missing_objective_as_zero() -> None:
    objectives = [Objective("a", "A"), Objective("b", "B")]
    assert weighted_overall(objectives, {"a": 80.0}) == 40.0
    assert weighted_overall(objectives, {}) == 0.0


def test_weighted_overall_ignores_progress_of_unknown_objectives() -> None:
    assert weighted_overall([Objective("a", "A")], {"a": 10.0, "zzz": 100.0}) == 10.0


def test_weighted_overall_rounds_to_two_decimals() -> None:
    objectives = [Objective("a", "A"), Objective("b", "B"), Objective("c", "C")]
    assert weighted_overall(objectives, {"a": 100.0}) == 33.33
    assert weighted_overall(objectives, {"a": 100.0, "b": 100.0}) == 66.67


def test_weighted_overall_of_no_objectives_is_zero() -> None:
    assert weighted_overall([], {"a": 50.0}) == 0.0


@st.composite
def objectives_with_progress(draw: st.DrawFn) -> tuple[list[Objective], dict[str, float]]:
    n = draw(st.integers(min_value=1, max_value=8))
    objectives = [Objective(f"o{i}", f"O{i}", weight=draw(weight)) for i in range(n)]
    reported = draw(st.lists(st.sampled_from([o.id for o in objectives]), unique=True))
    return objectives, {oid: draw(percent) for oid in reported}


@settings(database=None)
@given(objectives_with_progress())
def test_weighted_overall_matches_the_mean_and_stays_in_range(
    case: tuple[list[Objective], dict[str, float]],
) -> None:
    objectives, progress = case
    overall = weighted_overall(objectives, progress)
    expected = sum(o.weight * progress.get(o.id, 0.0) for o in objectives) / sum(o.weight for o in objectives)
    assert 0.0 <= overall <= 100.0
    assert has_two_decimals(overall)
    assert overall == pytest.approx(expected, abs=0.005 + 1e-9)
    assert min(progress.get(o.id, 0.0) for o in objectives) - 0.005 <= overall
    assert overall <= max(progress.get(o.id, 0.0) for o in objectives) + 0.005


@settings(database=None)
@given(objectives_with_progress())
def test_all_objectives_at_100_give_100_and_none_reported_gives_0(
    case: tuple[list[Objective], dict[str, float]],
) -> None:
    objectives, _ = case
    assert weighted_overall(objectives, {o.id: 100.0 for o in objectives}) == 100.0
    assert weighted_overall(objectives, {}) == 0.0


# --- crossed ---------------------------------------------------------------------------------


def test_crossed_examples() -> None:
    assert crossed(DEFAULT_MILESTONES, 0.0, 60.0) == [25.0, 50.0]
    assert crossed(DEFAULT_MILESTONES, 25.0, 50.0) == [50.0]
    assert crossed(DEFAULT_MILESTONES, 50.0, 50.0) == []
    assert crossed(DEFAULT_MILESTONES, 80.0, 20.0) == []
    assert crossed(DEFAULT_MILESTONES, 0.0, 100.0) == [25.0, 50.0, 75.0, 90.0, 100.0]
    assert crossed((90.0, 10.0, 50.0), 0.0, 95.0) == [10.0, 50.0, 90.0]


@settings(database=None)
@given(
    thresholds=st.lists(st.floats(min_value=0.01, max_value=100), max_size=10),
    previous=percent,
    current=percent,
)
def test_crossed_is_exactly_the_thresholds_in_the_half_open_interval(
    thresholds: list[float], previous: float, current: float
) -> None:
    result = crossed(thresholds, previous, current)
    assert result == sorted(result)
    assert sorted(result) == sorted(t for t in thresholds if previous < t <= current)
    if current <= previous:
        assert result == []


@settings(database=None)
@given(
    thresholds=st.lists(st.floats(min_value=0.01, max_value=100), unique=True, max_size=10),
    a=percent,
    b=percent,
    c=percent,
)
def test_crossing_in_two_steps_equals_crossing_in_one(
    thresholds: list[float], a: float, b: float, c: float
) -> None:
    low, mid, high = sorted((a, b, c))
    assert crossed(thresholds, low, mid) + crossed(thresholds, mid, high) == crossed(thresholds, low, high)


# --- slug / unique_ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Grow revenue", "grow_revenue"),
        ("  Reduce   p95 latency!! ", "reduce_p95_latency"),
        ("Ship v2.0", "ship_v2_0"),
        ("", "objective"),
        ("!!!", "objective"),
    ],
)
def test_slug_examples(title: str, expected: str) -> None:
    assert slug(title) == expected


@settings(database=None)
@given(st.text())
def test_slug_is_a_valid_objective_id(title: str) -> None:
    assert OBJECTIVE_ID.match(slug(title))


def test_unique_ids_number_repeated_titles() -> None:
    assert unique_ids(["Grow revenue", "grow revenue", "Grow Revenue!"]) == [
        "grow_revenue",
        "grow_revenue_2",
        "grow_revenue_3",
    ]
    assert unique_ids(["a_2", "a", "a"]) == ["a_2", "a", "a_3"]


@settings(database=None)
@given(st.lists(st.text(alphabet="aAb _-2!", max_size=8), max_size=20))
def test_unique_ids_are_unique_and_one_per_title(titles: list[str]) -> None:
    ids = unique_ids(titles)
    assert len(ids) == len(titles)
    assert len(set(ids)) == len(ids)


@settings(database=None)
@given(st.lists(st.text(), max_size=20))
def test_unique_ids_from_any_titles_are_unique(titles: list[str]) -> None:
    ids = unique_ids(titles)
    assert len(set(ids)) == len(titles)


@settings(database=None)
@given(st.lists(st.text(alphabet="ab ", min_size=60, max_size=90), min_size=1, max_size=5))
def test_ids_derived_from_long_titles_are_still_valid_objective_ids(titles: list[str]) -> None:
    """An id derived from a title must be accepted where the API takes objective ids,
    or progress could never be reported for that objective."""
    for oid in unique_ids(titles):
        assert OBJECTIVE_ID.match(oid), oid


# --- GoalDefinition.problems -----------------------------------------------------------------


def test_a_valid_definition_has_no_problems() -> None:
    definition = GoalDefinition(
        "Answer support tickets",
        (
            Objective("o1", "Resolve tickets", weight=2.0, kpi=Kpi("resolved", target=100.0)),
            Objective(
                "o2", "Keep latency low", kpi=Kpi("p95", baseline=500.0, target=100.0, direction="decrease")
            ),
            Objective("o3", "Custom", milestones=(10.0, 100.0)),
        ),
    )
    assert definition.problems() == {}
    assert definition.objective_ids() == ["o1", "o2", "o3"]


def test_no_objectives_is_a_problem() -> None:
    assert GoalDefinition("purpose", ()).problems() == {
        "goals.primary_objectives": "at least one objective is required"
    }


def test_blank_purpose_is_a_problem() -> None:
    assert "goals.purpose_statement" in GoalDefinition("   ", (Objective("a", "A"),)).problems()


def test_duplicate_objective_ids_are_named_at_the_second_occurrence() -> None:
    problems = GoalDefinition(
        "p", (Objective("a", "A"), Objective("b", "B"), Objective("a", "A again"))
    ).problems()
    assert set(problems) == {"goals.primary_objectives.2.id"}
    assert "'a'" in problems["goals.primary_objectives.2.id"]


@pytest.mark.parametrize("bad_weight", [0.0, -1.0, math.inf, math.nan])
def test_non_positive_or_non_finite_weight_is_a_problem(bad_weight: float) -> None:
    problems = GoalDefinition("p", (Objective("a", "A"), Objective("b", "B", weight=bad_weight))).problems()
    assert set(problems) == {"goals.primary_objectives.1.weight"}


def test_kpi_problems_are_nested_under_the_objective() -> None:
    problems = GoalDefinition("p", (Objective("a", "A", kpi=Kpi("m", baseline=10.0, target=5.0)),)).problems()
    assert set(problems) == {"goals.primary_objectives.0.kpi.target"}


@pytest.mark.parametrize("milestones", [(0.0,), (50.0, 101.0), (-5.0,)])
def test_milestones_outside_0_100_are_a_problem(milestones: tuple[float, ...]) -> None:
    problems = GoalDefinition("p", (Objective("a", "A", milestones=milestones),)).problems()
    assert set(problems) == {"goals.primary_objectives.0.milestones"}
