"""KPI mappings (what an objective's KPI is read from) and the KPI values they give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.collection import clean_reason
from application.transcodings import FastJSONTranscoder
from domain.auto_update import AutoUpdate, KpiMapping, Series, auto_update_problems, parse_mapping
from domain.errors import InvalidCommand
from domain.goals import AgentGoals
from domain.kpi_values import MissingMetric, Sample, kpi_value, quantile, rate
from domain.limits import MAX_REASON
from domain.meta import Meta
from domain.objectives import GoalDefinition, Kpi, Objective

META = Meta("collector")
SAMPLES = [
    Sample("requests_total", 90.0, {"code": "200", "route": "/a"}),
    Sample("requests_total", 10.0, {"code": "500", "route": "/a"}),
    Sample("requests_total", 50.0, {"code": "200", "route": "/b"}),
    *(
        Sample("latency_seconds_bucket", count, {"le": le})
        for le, count in (("0.1", 50.0), ("0.5", 90.0), ("1.0", 100.0), ("+Inf", 100.0))
    ),
    Sample("queue_depth", 7.0),
]


def test_a_metric_name_is_the_shorthand_of_a_value_mapping_and_is_shown_as_given() -> None:
    mapping, errors = parse_mapping("queue_depth")
    assert errors == {} and mapping == KpiMapping(Series("queue_depth"))
    assert mapping.as_json() == "queue_depth"


def test_a_mapping_object_names_each_wrong_field() -> None:
    _, errors = parse_mapping(
        {"metric": "", "labels": {"9bad": "x"}, "aggregation": "median", "window_s": 1, "extra": 1}
    )
    assert set(errors) == {"metric", "labels.9bad", "aggregation", "window_s", "extra"}
    _, errors = parse_mapping({"metric": "m", "aggregation": "ratio"})
    assert set(errors) == {"denominator"}
    _, errors = parse_mapping({"metric": "m", "aggregation": "quantile", "quantile": 1.5})
    assert set(errors) == {"quantile"}


def test_the_configuration_refuses_a_bad_mapping_with_its_field_path() -> None:
    with pytest.raises(InvalidCommand) as refused:
        AutoUpdate(True, 120, None, "http://a/metrics", {"obj1": {"metric": "m", "aggregation": "avg"}})  # type: ignore[dict-item]  # the JSON form, parsed
    assert set(refused.value.errors) == {"kpi_metrics.obj1.aggregation"}


@pytest.mark.parametrize(
    ("interval_s", "window_s", "refused"),
    [(120, 10, True), (120, 239, True), (120, 240, False), (5, 5000, False), (5, 86_400, True), (120, None, False)],
)
def test_a_rate_window_must_hold_two_readings_and_no_more_than_are_kept(
    interval_s: int, window_s: float | None, refused: bool
) -> None:
    mapping = {"metric": "t_total", "aggregation": "rate", **({"window_s": window_s} if window_s else {})}
    config = AutoUpdate(True, interval_s, None, "http://a/m", {"o1": mapping})  # type: ignore[dict-item]  # the JSON form, parsed
    errors = auto_update_problems(config, frozenset({"o1"}))
    assert set(errors) == ({"kpi_metrics.o1.window_s"} if refused else set())
    if refused:
        assert "2 x interval_s and 1000 x interval_s" in errors["kpi_metrics.o1.window_s"]


def test_values_sum_the_series_that_carry_the_labels() -> None:
    assert kpi_value(KpiMapping(Series("requests_total", {"code": "200"})), SAMPLES) == 140.0
    assert kpi_value(KpiMapping(Series("queue_depth")), SAMPLES) == 7.0
    with pytest.raises(MissingMetric):
        kpi_value(KpiMapping(Series("requests_total", {"code": "404"})), SAMPLES)


def test_a_ratio_divides_two_series() -> None:
    mapping, _ = parse_mapping(
        {
            "metric": "requests_total",
            "labels": {"code": "500"},
            "aggregation": "ratio",
            "denominator": {"metric": "requests_total", "labels": {"route": "/a"}},
        }
    )
    assert mapping is not None and kpi_value(mapping, SAMPLES) == pytest.approx(0.1)


def test_a_histogram_quantile_interpolates_inside_its_bucket() -> None:
    # 99th of 100 observations: in the (0.5, 1.0] bucket, 9 of its 10: 0.5 + 0.5 * 0.9
    assert quantile(SAMPLES, Series("latency_seconds"), 0.99) == pytest.approx(0.95)
    assert quantile(SAMPLES, Series("latency_seconds"), 0.5) == pytest.approx(0.1)


def test_a_rate_counts_a_counter_restart_from_zero() -> None:
    assert rate([(0.0, 10.0)]) is None
    assert rate([(0.0, 10.0), (10.0, 30.0)]) == 2.0
    assert rate([(0.0, 10.0), (10.0, 30.0), (20.0, 5.0)]) == pytest.approx(25.0 / 20.0)


@given(st.lists(st.floats(0, 1e6), min_size=2, max_size=20))
def test_a_rate_of_a_counter_is_never_negative(values: list[float]) -> None:
    found = rate([(float(i), v) for i, v in enumerate(values)])
    assert found is not None and found >= 0


def test_configurations_stored_with_metric_names_load_as_mappings() -> None:
    transcoder = FastJSONTranscoder()
    from application.transcodings import register_domain_transcodings

    register_domain_transcodings(transcoder)
    stored = b'{"_type_":"auto_update","_data_":{"enabled":true,"interval_s":60,"health_url":null,"metrics_url":"http://a/m","kpi_metrics":{"o1":"tickets"}}}'
    loaded = transcoder.decode(stored)
    assert loaded.kpi_metrics == {"o1": KpiMapping(Series("tickets"))}
    assert transcoder.decode(transcoder.encode(loaded)) == loaded
    structured = AutoUpdate(
        True, 60, None, "http://a/m", {"o1": {"metric": "t_total", "aggregation": "rate", "window_s": 60}}  # type: ignore[dict-item]  # the JSON form, parsed
    )
    assert transcoder.decode(transcoder.encode(structured)) == structured


def _goals() -> AgentGoals:
    definition = GoalDefinition(
        "p",
        (
            Objective("speed", "Speed", kpi=Kpi("q", target=100.0)),
            Objective("done", "Done"),
        ),
    )
    goals = AgentGoals.start("t", "a", definition, META)
    goals.collect_events()
    return goals


def test_a_steady_agent_writes_nothing_and_a_move_of_the_min_delta_writes_progress() -> None:
    goals = _goals()
    now = datetime.now(UTC)
    goals.record_metrics({"speed": 40.0}, now, 0.5, META)
    assert [type(e).__name__ for e in goals.collect_events()] == ["ProgressRecorded", "MilestoneReached"]
    goals.record_metrics({"speed": 40.3}, now, 0.5, META)
    assert goals.collect_events() == []
    goals.record_metrics({"speed": 40.6, "done": 150.0}, now, 0.5, META)
    events = goals.collect_events()
    assert isinstance(events[0], AgentGoals.ProgressRecorded) and events[0].source == "metrics"
    assert goals.objective_progress == {"speed": 40.6, "done": 100.0}


def test_only_the_first_failure_and_the_first_recovery_are_recorded() -> None:
    goals = _goals()
    goals.collection_failed("down", META)
    goals.collection_failed("still down", META)
    assert [type(e).__name__ for e in goals.collect_events()] == ["MetricsCollectionFailed"]
    goals.record_metrics({}, datetime.now(UTC), 0.5, META)
    goals.record_metrics({}, datetime.now(UTC), 0.5, META)
    assert [type(e).__name__ for e in goals.collect_events()] == ["MetricsCollectionRecovered"]


def test_a_stall_is_recorded_once_until_progress_resumes() -> None:
    goals = _goals()
    later = goals.created_on + timedelta(hours=2)
    goals.check_stagnation(later, 1.0, META)
    goals.check_stagnation(later + timedelta(hours=1), 1.0, META)
    stalls = goals.collect_events()
    assert len(stalls) == 1 and isinstance(stalls[0], AgentGoals.GoalStagnant)
    assert stalls[0].since == goals.created_on
    goals.record_progress(META, objective_progress={"done": 10.0}, observed_at=datetime.now(UTC))
    goals.collect_events()
    goals.check_stagnation(datetime.now(UTC) + timedelta(hours=2), 1.0, META)
    assert len(goals.collect_events()) == 1


def test_a_failure_reason_keeps_no_control_character_and_is_bounded() -> None:
    assert clean_reason("http://a/metrics: g\x00\x1b[31m\ud800 1") == "http://a/metrics: g[31m 1"
    assert len(clean_reason("x" * 5000)) == MAX_REASON
