"""KPI values from an agent's metric samples: the aggregations of a KPI mapping, pure.

Samples are what a scrape found: a name, labels and a value (a Prometheus text sample, or a
number of a JSON health document under its dotted path). A series is the samples with the
mapping's metric name whose labels include the mapping's labels; several are summed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from domain.auto_update import KpiMapping, Series

# (seconds since the epoch, value) of one counter reading.
Reading = tuple[float, float]


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


class MissingMetric(Exception):
    """No sample of the series a mapping reads."""

    def __init__(self, metric: str) -> None:
        super().__init__(f"no sample of {metric}")
        self.metric = metric


class UnusableMetric(ValueError):
    """A series whose samples cannot give a value (a bucket bound that is not a number)."""


def series_value(samples: Iterable[Sample], series: Series) -> float:
    """The sum of the samples of `series`; MissingMetric if there is none."""
    found = [s.value for s in samples if s.name == series.metric and _carries(s.labels, series.labels)]
    if not found:
        raise MissingMetric(series.metric)
    return math.fsum(found)


def rate(readings: Sequence[Reading]) -> float | None:
    """Per-second increase of a counter over its readings (oldest first), counting a drop
    as a restart from zero; None with fewer than two readings or no time between them."""
    if len(readings) < 2 or readings[-1][0] <= readings[0][0]:
        return None
    increase = 0.0
    for (_, before), (_, after) in pairwise(readings):
        increase += after - before if after >= before else after
    return increase / (readings[-1][0] - readings[0][0])


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def quantile(samples: Sequence[Sample], series: Series, q: float) -> float | None:
    """The q-quantile of a histogram (`<metric>_bucket` samples with `le`), interpolated
    linearly inside its bucket as Prometheus does; or a summary's `quantile` sample. None
    when the histogram holds no observation."""
    summary = [
        s.value
        for s in samples
        if s.name == series.metric
        and _carries(s.labels, series.labels)
        and _same_quantile(s.labels.get("quantile"), q)
    ]
    if summary:
        return math.fsum(summary)
    buckets: dict[float, float] = {}
    for s in samples:
        if s.name == f"{series.metric}_bucket" and _carries(s.labels, series.labels) and "le" in s.labels:
            try:
                bound = float(s.labels["le"])
            except ValueError:
                raise UnusableMetric(f"a bucket of {series.metric} has a bound (le) that is not a number") from None
            buckets[bound] = buckets.get(bound, 0.0) + s.value
    if not buckets:
        raise MissingMetric(series.metric)
    return _bucket_quantile(sorted(buckets.items()), q)


def _bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    total = buckets[-1][1]
    if total <= 0 or math.isnan(total):
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the highest finite bound, as Prometheus answers
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def kpi_value(mapping: KpiMapping, samples: Sequence[Sample], readings: Sequence[Reading] = ()) -> float | None:
    """The KPI value `mapping` gives from `samples` (a rate: from the counter's `readings`
    within its window, the newest included). None when there is no value yet (a rate's first
    reading, a ratio over zero, an empty histogram); MissingMetric when a series is absent."""
    match mapping.aggregation:
        case "value":
            return series_value(samples, mapping.series)
        case "rate":
            return rate(readings)
        case "ratio":
            assert mapping.denominator is not None
            return ratio(series_value(samples, mapping.series), series_value(samples, mapping.denominator))
        case "quantile":
            assert mapping.quantile is not None
            return quantile(samples, mapping.series, mapping.quantile)
    return None


def _carries(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def _same_quantile(label: str | None, q: float) -> bool:
    try:
        return label is not None and math.isclose(float(label), q)
    except ValueError:
        return False
