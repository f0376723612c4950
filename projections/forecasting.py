"""The pure math behind the progress analytics: Theil-Sen slopes, percentiles, forecasts.

Plain functions over numbers and instants; no I/O, no clock (callers pass `now`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MAX_POINTS = 500
"""At most this many of the latest points enter a fit."""
MAX_PAIRS = 10_000
"""Above this many pairs, a fixed-seed sample of this many pairs stands in for all of them:
the sample's median is within half a percentile of all the pairs' (one standard error), a
hundredth of the interquartile band, and a fit of 500 points takes a few milliseconds."""
DAY_S = 86_400.0


@dataclass(frozen=True)
class SlopeFit:
    """A Theil-Sen fit: the median pairwise slope and the quartiles of the pairwise slopes."""

    slope: float
    low: float
    high: float
    pairs: int


@dataclass(frozen=True)
class Forecast:
    """When a series reaches its target: at the fitted slope, and at the quartile slopes.

    `low` is the earliest date (reached at the 75th-percentile slope), `high` the latest (at the
    25th-percentile slope); `high` is None when that slope is not positive (no upper bound), and
    a date past the calendar's end is None too.
    """

    completion: date | None
    low: date | None
    high: date | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "completion": _iso(self.completion),
            "low": _iso(self.low),
            "high": _iso(self.high),
        }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of ascending values, linearly interpolated between closest
    ranks (the "inclusive" / numpy-default definition): q=0.5 is the median."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be between 0 and 1")
    rank = q * (len(sorted_values) - 1)
    below = math.floor(rank)
    above = min(below + 1, len(sorted_values) - 1)
    fraction = rank - below
    return sorted_values[below] + (sorted_values[above] - sorted_values[below]) * fraction


def pairwise_slopes(xs: Sequence[float], ys: Sequence[float], *, max_pairs: int = MAX_PAIRS) -> list[float]:
    """Slopes (y_j - y_i) / (x_j - x_i) of every pair with distinct x, or of a deterministic
    sample of `max_pairs` pairs (drawn with a seed fixed by the number of points) when there
    are more pairs than that."""
    n = len(xs)
    if n != len(ys):
        raise ValueError("xs and ys differ in length")
    slopes: list[float] = []
    if n * (n - 1) // 2 <= max_pairs:
        for i in range(n):
            xi, yi = xs[i], ys[i]
            for j in range(i + 1, n):
                if xs[j] != xi:
                    slopes.append((ys[j] - yi) / (xs[j] - xi))
        return slopes
    draw = random.Random(n).random  # noqa: S311 - reproducible sampling, not security
    others = n - 1
    append = slopes.append
    for _ in range(max_pairs):
        # uniform over the ordered pairs of distinct points (random() < 1, so i < n, j < n - 1)
        i = int(draw() * n)
        j = int(draw() * others)
        j += j >= i
        dx = xs[j] - xs[i]
        if dx:
            append((ys[j] - ys[i]) / dx)
    return slopes


def theil_sen(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    max_points: int = MAX_POINTS,
    max_pairs: int = MAX_PAIRS,
) -> SlopeFit | None:
    """The Theil-Sen slope (median of pairwise slopes) with its 25th/75th percentile slopes.

    Points are taken in the order given and only the last `max_points` are used, so pass
    them oldest first. None when fewer than two points have distinct x.
    """
    xs, ys = xs[-max_points:], ys[-max_points:]
    slopes = sorted(pairwise_slopes(xs, ys, max_pairs=max_pairs))
    if not slopes:
        return None
    return SlopeFit(
        slope=percentile(slopes, 0.5),
        low=percentile(slopes, 0.25),
        high=percentile(slopes, 0.75),
        pairs=len(slopes),
    )


def fit_per_day(points: Sequence[tuple[datetime, float]], *, max_points: int = MAX_POINTS) -> SlopeFit | None:
    """Theil-Sen over the latest `max_points` (instant, value) points, in value units per day;
    points oldest first. Days are counted from the first point used, so the fit depends on
    those points only."""
    points = points[-max_points:]
    if len(points) < 2:
        return None
    origin = points[0][0]
    xs = [(at - origin).total_seconds() / DAY_S for at, _ in points]
    return theil_sen(xs, [value for _, value in points], max_points=max_points)


def reach_date(start: datetime, value: float, rate_per_day: float, target: float = 100.0) -> date | None:
    """The UTC date on which `value`, growing at `rate_per_day` from `start`, reaches `target`;
    None when it never does (rate not positive) or only after the calendar ends."""
    if value >= target:
        return start.astimezone(UTC).date()
    if rate_per_day <= 0 or not math.isfinite(rate_per_day):
        return None
    try:
        return (start + timedelta(days=(target - value) / rate_per_day)).astimezone(UTC).date()
    except OverflowError:
        return None


def forecast(last_at: datetime, last_value: float, fit: SlopeFit, target: float = 100.0) -> Forecast | None:
    """When the series reaches `target` from its latest point (`last_at`, `last_value`).

    `completion` uses the fitted (median) slope; the band uses the interquartile pairwise
    slopes: `low` at the 75th-percentile slope (the earliest plausible date) and `high` at the
    25th-percentile slope (the latest). None when the fitted slope is not positive.
    """
    if fit.slope <= 0 and last_value < target:
        return None
    return Forecast(
        completion=reach_date(last_at, last_value, fit.slope, target),
        low=reach_date(last_at, last_value, fit.high, target),
        high=reach_date(last_at, last_value, fit.low, target),
    )


def at_risk(
    *,
    completion: date | None,
    target_date: date | None,
    slope: float | None,
    value: float,
    today: date,
    horizon_days: int = 30,
    target: float = 100.0,
) -> bool:
    """Whether a goal looks like missing its target date.

    With a positive slope: True when the forecast `completion` is after the target date (or
    is None, i.e. past the calendar's end). Without a forecast (no slope, or a slope not
    positive): True when the target date is at most `horizon_days` away (or already past).
    Never without a target date, and never once the value has reached the target.
    """
    if target_date is None or value >= target:
        return False
    if slope is not None and slope > 0:
        return completion is None or completion > target_date  # None: past the calendar's end
    return target_date <= today + timedelta(days=horizon_days)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
