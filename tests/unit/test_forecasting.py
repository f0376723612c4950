"""The forecasting math: percentiles, Theil-Sen slopes, completion dates and the at-risk rule."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.forecasting import (
    MAX_PAIRS,
    MAX_POINTS,
    Forecast,
    SlopeFit,
    at_risk,
    fit_per_day,
    forecast,
    pairwise_slopes,
    percentile,
    reach_date,
    theil_sen,
)

START = datetime(2024, 3, 1, tzinfo=UTC)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.25) == 1.75  # rank 0.75
    assert percentile(values, 0.5) == 2.5
    assert percentile(values, 0.75) == 3.25  # rank 2.25
    assert percentile(values, 1.0) == 4.0
    assert percentile([7.0], 0.3) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile(values, 1.5)


def test_theil_sen_of_a_small_series_by_hand() -> None:
    # pairwise slopes: 10, 10, 50/3, 10, 20, 30 -> sorted 10, 10, 10, 16.67, 20, 30
    fit = theil_sen([0.0, 1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 60.0])
    assert fit is not None
    assert fit.pairs == 6
    assert fit.slope == pytest.approx((10 + 50 / 3) / 2)  # 13.333
    assert fit.low == pytest.approx(10.0)  # rank 1.25
    assert fit.high == pytest.approx(50 / 3 + 0.75 * (20 - 50 / 3))  # rank 3.75: 19.1667


def test_no_slope_without_two_distinct_instants() -> None:
    assert theil_sen([], []) is None
    assert theil_sen([1.0], [5.0]) is None
    assert theil_sen([2.0, 2.0, 2.0], [1.0, 5.0, 9.0]) is None
    assert fit_per_day([(START, 10.0)]) is None
    with pytest.raises(ValueError):
        pairwise_slopes([1.0, 2.0], [1.0])


@given(
    xs=st.lists(st.integers(-1_000_000, 1_000_000), min_size=2, max_size=60, unique=True),
    slope=st.integers(-1000, 1000),
    intercept=st.integers(-1_000_000, 1_000_000),
)
def test_a_perfectly_linear_series_gives_its_exact_slope(xs: list[int], slope: int, intercept: int) -> None:
    ordered = sorted(xs)
    fit = theil_sen([float(x) for x in ordered], [float(intercept + slope * x) for x in ordered])
    assert fit is not None
    assert (fit.slope, fit.low, fit.high) == (slope, slope, slope)


@given(
    steps=st.lists(st.floats(0.01, 5.0), min_size=1, max_size=40),
    slope=st.floats(-50.0, 50.0),
    intercept=st.floats(-100.0, 100.0),
)
def test_a_linear_series_in_time_gives_its_slope_per_day(
    steps: list[float], slope: float, intercept: float
) -> None:
    instants = [START]
    for days in steps:
        instants.append(instants[-1] + timedelta(days=days))
    points = [(at, intercept + slope * (at - START).total_seconds() / 86_400) for at in instants]
    fit = fit_per_day(points)
    assert fit is not None
    assert fit.slope == pytest.approx(slope, abs=1e-6)


@given(data=st.data(), n=st.integers(8, 40), slope=st.integers(-20, 20), intercept=st.integers(-50, 50))
def test_theil_sen_ignores_a_minority_of_outliers(
    data: st.DataObject, n: int, slope: int, intercept: int
) -> None:
    ys = [float(intercept + slope * x) for x in range(n)]
    wild = data.draw(st.lists(st.sampled_from(range(n)), unique=True, min_size=1, max_size=n // 5))
    for index in wild:
        ys[index] = data.draw(st.floats(-1e6, 1e6, allow_nan=False))
    # with at most a fifth of the points wild, more than half of the pairs are clean
    fit = theil_sen([float(x) for x in range(n)], ys)
    assert fit is not None
    assert fit.slope == slope


def test_only_the_latest_points_enter_the_fit() -> None:
    xs = [float(x) for x in range(10)]
    ys = [1000.0, -500.0, 70.0, 3.0, -9.0] + [2.0 * x for x in range(5, 10)]
    fit = theil_sen(xs, ys, max_points=5)
    assert fit is not None
    assert (fit.slope, fit.pairs) == (2.0, 10)


def test_many_pairs_are_sampled_deterministically() -> None:
    xs = [float(x) for x in range(400)]  # 79,800 pairs, above the MAX_PAIRS sampled
    ys = [3.0 * x + (500.0 if x % 7 == 0 else 0.0) for x in range(400)]
    first, again = theil_sen(xs, ys), theil_sen(xs, ys)
    assert first is not None
    assert first == again
    assert first.pairs <= MAX_PAIRS < 79_800
    assert first.slope == 3.0


def test_a_sampled_fit_is_close_to_the_fit_over_every_pair() -> None:
    rng = random.Random(11)
    xs = sorted(rng.uniform(0.0, 30.0) for _ in range(MAX_POINTS))
    ys = [2.5 * x + rng.gauss(0.0, 8.0) for x in xs]
    every = theil_sen(xs, ys, max_pairs=MAX_POINTS * MAX_POINTS)
    sampled = theil_sen(xs, ys)
    assert every is not None and sampled is not None
    assert (every.pairs, sampled.pairs) == (MAX_POINTS * (MAX_POINTS - 1) // 2, MAX_PAIRS)
    band = every.high - every.low
    # within a twentieth of the interquartile band, each of the three slopes
    assert abs(sampled.slope - every.slope) < band / 20
    assert abs(sampled.low - every.low) < band / 20
    assert abs(sampled.high - every.high) < band / 20


def test_a_fit_depends_only_on_the_points_it_uses() -> None:
    rng, at, points = random.Random(3), START, []
    for k in range(MAX_POINTS + 40):
        at += timedelta(seconds=rng.uniform(60, 40_000))
        points.append((at, 10.0 + 0.001 * k**1.5 + rng.random()))
    # days counted from the first point used, not the first given: the same to the last bit
    assert fit_per_day(points) == fit_per_day(points[40:])


def test_forecast_from_the_latest_point_with_an_interquartile_band() -> None:
    fit = SlopeFit(slope=40 / 3, low=10.0, high=20.0, pairs=6)
    last = datetime(2024, 3, 4, tzinfo=UTC)
    # 40 points left: 3 days at 13.33/day, 2 days at 20/day, 4 days at 10/day
    assert forecast(last, 60.0, fit) == Forecast(date(2024, 3, 7), date(2024, 3, 6), date(2024, 3, 8))
    assert forecast(last, 60.0, fit).as_json() == {  # type: ignore[union-attr]
        "completion": "2024-03-07",
        "low": "2024-03-06",
        "high": "2024-03-08",
    }


def test_no_forecast_without_a_positive_slope_and_no_upper_bound_without_a_positive_quartile() -> None:
    last = datetime(2024, 3, 4, 12, tzinfo=UTC)
    assert forecast(last, 50.0, SlopeFit(0.0, -1.0, 1.0, 3)) is None
    assert forecast(last, 50.0, SlopeFit(-2.0, -3.0, -1.0, 3)) is None
    band = forecast(last, 50.0, SlopeFit(5.0, -1.0, 10.0, 3))
    assert band == Forecast(date(2024, 3, 14), date(2024, 3, 9), None)
    assert forecast(last, 100.0, SlopeFit(-1.0, -1.0, -1.0, 1)) == Forecast(
        date(2024, 3, 4), date(2024, 3, 4), date(2024, 3, 4)
    )


def test_reach_date() -> None:
    start = datetime(2024, 3, 1, 18, tzinfo=UTC)
    assert reach_date(start, 90.0, 10.0) == date(2024, 3, 2)
    assert reach_date(start, 100.0, 0.0) == date(2024, 3, 1)
    assert reach_date(start, 10.0, 0.0) is None
    assert reach_date(start, 10.0, 1e-12) is None  # past the end of the calendar


@pytest.mark.parametrize(
    ("completion", "target", "slope", "value", "expected"),
    [
        (date(2024, 3, 7), date(2024, 3, 6), 5.0, 50.0, True),  # forecast after the target
        (date(2024, 3, 7), date(2024, 3, 7), 5.0, 50.0, False),  # on the target day
        (None, date(2024, 3, 6), 5.0, 50.0, True),  # forecast past the end of the calendar
        (None, None, None, 50.0, False),  # no target date
        (None, date(2024, 3, 31), None, 50.0, True),  # cannot forecast, target within 30 days
        (None, date(2024, 3, 31), 0.0, 50.0, True),
        (None, date(2024, 4, 1), -1.0, 50.0, False),  # cannot forecast, target 31 days away
        (None, date(2024, 2, 1), None, 50.0, True),  # target already past
        (None, date(2024, 2, 1), None, 100.0, False),  # already done
    ],
)
def test_at_risk(
    completion: date | None, target: date | None, slope: float | None, value: float, expected: bool
) -> None:
    today = date(2024, 3, 1)
    assert (
        at_risk(completion=completion, target_date=target, slope=slope, value=value, today=today) is expected
    )
