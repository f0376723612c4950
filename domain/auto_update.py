"""How an agent's live metrics map to its objectives: the auto-update configuration.

A KPI mapping names a series (a metric and labels it must carry) and how its samples become
one KPI value: `value` (the series as it is now; several matching series are summed), `rate`
(per second, over `window_s` of the counter's samples), `ratio` (the series over a
`denominator` series) or `quantile` (`quantile` of a histogram's buckets, or a summary's
quantile series). A bare metric name is the shorthand of `{"metric": name}` (a `value`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from domain.errors import InvalidCommand
from domain.limits import MAX_METRIC, MAX_URL, text_problem

Aggregation = Literal["value", "rate", "ratio", "quantile"]
AGGREGATIONS: tuple[Aggregation, ...] = ("value", "rate", "ratio", "quantile")
MIN_INTERVAL_S, MAX_INTERVAL_S = 5, 86_400
DEFAULT_INTERVAL_S = 120
DEFAULT_RATE_WINDOW_S = 300.0
MIN_RATE_WINDOW_S, MAX_RATE_WINDOW_S = 10.0, 86_400.0
MAX_LABELS = 20
# Readings of a counter kept at most: a rate's window holds at most this many polls.
MAX_READINGS = 1_000
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAPPING_FIELDS = frozenset({"metric", "labels", "aggregation", "window_s", "quantile", "denominator"})


@dataclass(frozen=True)
class Series:
    """A metric and the labels a sample must carry to be part of it."""

    metric: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "labels": dict(self.labels)}


@dataclass(frozen=True)
class KpiMapping:
    """Where one objective's KPI value comes from."""

    series: Series
    aggregation: Aggregation = "value"
    window_s: float | None = None  # rate
    quantile: float | None = None  # quantile
    denominator: Series | None = None  # ratio

    @property
    def metric(self) -> str:
        return self.series.metric

    @property
    def is_shorthand(self) -> bool:
        return self.aggregation == "value" and not self.series.labels

    def as_json(self) -> str | dict[str, Any]:
        """The shape it was configured in: a bare name for the shorthand."""
        if self.is_shorthand:
            return self.series.metric
        found: dict[str, Any] = {**self.series.as_json(), "aggregation": self.aggregation}
        if self.aggregation == "rate":
            found["window_s"] = self.window_s
        if self.aggregation == "quantile":
            found["quantile"] = self.quantile
        if self.denominator is not None:
            found["denominator"] = self.denominator.as_json()
        return found


@dataclass(frozen=True)
class AutoUpdate:
    """Whether and how often the agent is polled, where, and how its metrics map to objectives.

    `kpi_metrics` may be given in its JSON form (a metric name or a mapping object per
    objective): it is kept as KpiMappings. A name is kept as given and checked with the rest
    of the configuration (`auto_update_problems`); an object that is not a mapping is refused
    here, with the paths of what is wrong. Events stored when a mapping was only a name load
    the same way.
    """

    enabled: bool
    interval_s: int
    health_url: str | None
    metrics_url: str | None
    kpi_metrics: Mapping[str, KpiMapping]

    def __post_init__(self) -> None:
        mappings: dict[str, KpiMapping] = {}
        errors: dict[str, str] = {}
        for objective_id, raw in self.kpi_metrics.items():
            if isinstance(raw, str):
                mappings[objective_id] = KpiMapping(Series(raw))
                continue
            mapping, problems = parse_mapping(raw)
            errors.update({_path(f"kpi_metrics.{objective_id}", k): v for k, v in problems.items()})
            if mapping is not None:
                mappings[objective_id] = mapping
        if errors:
            raise InvalidCommand(errors)
        object.__setattr__(self, "kpi_metrics", mappings)

    def as_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "interval_s": self.interval_s,
            "health_url": self.health_url,
            "metrics_url": self.metrics_url,
            "kpi_metrics": {k: m.as_json() for k, m in self.kpi_metrics.items()},
        }


def parse_mapping(raw: object) -> tuple[KpiMapping | None, dict[str, str]]:
    """A KPI mapping from its JSON form (a metric name, or an object), or what is wrong with
    it, by field path relative to the mapping ("" for the mapping itself)."""
    if isinstance(raw, KpiMapping):
        return raw, {}
    if isinstance(raw, str):
        problem = text_problem(raw, MAX_METRIC, required=True)
        return (None, {"": problem}) if problem else (KpiMapping(Series(raw)), {})
    if not isinstance(raw, Mapping):
        return None, {"": "must be a metric name or an object with metric, labels and aggregation"}
    errors = {str(k)[:64]: "unknown field" for k in raw if k not in MAPPING_FIELDS}
    series, series_errors = _series(raw)
    errors.update(series_errors)
    aggregation = raw.get("aggregation", "value")
    if aggregation not in AGGREGATIONS:
        errors["aggregation"] = f"must be one of {', '.join(AGGREGATIONS)}"
    window_s = _window(raw, aggregation, errors)
    quantile = _quantile(raw, aggregation, errors)
    denominator = _denominator(raw, aggregation, errors)
    if errors or series is None:
        return None, errors
    return KpiMapping(series, cast(Aggregation, aggregation), window_s, quantile, denominator), {}


def _series(raw: Mapping[str, Any]) -> tuple[Series | None, dict[str, str]]:
    errors: dict[str, str] = {}
    metric = raw.get("metric")
    if problem := text_problem(metric, MAX_METRIC, required=True):
        errors["metric"] = problem
    labels = raw.get("labels", {})
    if not isinstance(labels, Mapping):  # [], "", 0, false or null are not "no labels"
        errors["labels"] = "must be an object of label name -> value (leave it out for none)"
        labels = {}
    elif len(labels) > MAX_LABELS:
        errors["labels"] = f"must have at most {MAX_LABELS} labels"
    for name, value in labels.items():
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
            errors[f"labels.{str(name)[:64]}"] = "a label name is letters, digits or '_', not starting with a digit"
        elif problem := text_problem(value, MAX_METRIC):
            errors[f"labels.{name}"] = problem
    if errors:
        return None, errors
    return Series(str(metric), {str(k): str(v) for k, v in labels.items()}), {}


def _window(raw: Mapping[str, Any], aggregation: object, errors: dict[str, str]) -> float | None:
    window = raw.get("window_s")
    if aggregation != "rate":
        if window is not None:
            errors["window_s"] = "only a rate has a window"
        return None
    if window is None:
        return DEFAULT_RATE_WINDOW_S
    if isinstance(window, bool) or not isinstance(window, int | float):
        errors["window_s"] = "must be a number of seconds"
    elif not MIN_RATE_WINDOW_S <= window <= MAX_RATE_WINDOW_S:
        errors["window_s"] = f"must be between {MIN_RATE_WINDOW_S:g} and {MAX_RATE_WINDOW_S:g} seconds"
    else:
        return float(window)
    return None


def _quantile(raw: Mapping[str, Any], aggregation: object, errors: dict[str, str]) -> float | None:
    quantile = raw.get("quantile")
    if aggregation != "quantile":
        if quantile is not None:
            errors["quantile"] = "only a quantile aggregation has a quantile"
        return None
    if isinstance(quantile, bool) or not isinstance(quantile, int | float) or not 0 < quantile < 1:
        errors["quantile"] = "must be a number between 0 and 1 (exclusive), e.g. 0.99"
        return None
    return float(quantile)


def _denominator(raw: Mapping[str, Any], aggregation: object, errors: dict[str, str]) -> Series | None:
    denominator = raw.get("denominator")
    if aggregation != "ratio":
        if denominator is not None:
            errors["denominator"] = "only a ratio has a denominator"
        return None
    if isinstance(denominator, str):
        denominator = {"metric": denominator}
    if not isinstance(denominator, Mapping):
        errors["denominator"] = "a ratio needs a denominator: {\"metric\", \"labels\"}"
        return None
    unknown = [k for k in denominator if k not in ("metric", "labels")]
    errors.update({f"denominator.{str(k)[:64]}": "unknown field" for k in unknown})
    series, series_errors = _series(denominator)
    errors.update({f"denominator.{k}": v for k, v in series_errors.items()})
    return series


def auto_update_problems(config: AutoUpdate, objective_ids: frozenset[str]) -> dict[str, str]:
    """What is wrong with a configuration, by field path."""
    errors: dict[str, str] = {}
    unknown = sorted(set(config.kpi_metrics) - objective_ids)
    if unknown:
        errors["kpi_metrics"] = f"unknown objective ids: {', '.join(unknown)}"
    if not MIN_INTERVAL_S <= config.interval_s <= MAX_INTERVAL_S:
        errors["interval_s"] = f"must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S} seconds"
    for name, url in (("health_url", config.health_url), ("metrics_url", config.metrics_url)):
        if url is not None and (problem := text_problem(url, MAX_URL, required=True)):
            errors[name] = problem
    for objective_id, mapping in config.kpi_metrics.items():
        _, problems = parse_mapping(mapping.as_json())
        errors.update({_path(f"kpi_metrics.{objective_id}", k): v for k, v in problems.items()})
        if not problems and (problem := window_problem(mapping, config.interval_s)):
            errors[f"kpi_metrics.{objective_id}.window_s"] = problem
        errors.update({_path(f"kpi_metrics.{objective_id}", k): v for k, v in _empty_labels(mapping).items()})
    if config.enabled and config.kpi_metrics and not config.metrics_url and not config.health_url:
        errors["metrics_url"] = "a KPI mapping needs a metrics_url or a health_url to read it from"
    return errors


def _empty_labels(mapping: KpiMapping) -> dict[str, str]:
    """Labels with an empty value: refused when configured (in Prometheus an empty label is an
    absent one), not when stored events load, which may hold one from before."""
    series = (("", mapping.series), ("denominator.", mapping.denominator))
    return {
        f"{prefix}labels.{name}": "must not be empty"
        for prefix, found in series
        if found is not None
        for name, value in found.labels.items()
        if not value.strip()
    }


def window_problem(mapping: KpiMapping, interval_s: int) -> str | None:
    """What is wrong with a rate's window at this poll interval: it must hold two readings at
    least (a rate needs two) and at most MAX_READINGS (no more are kept)."""
    if mapping.aggregation != "rate" or mapping.window_s is None or interval_s <= 0:
        return None
    if not 2 * interval_s <= mapping.window_s <= MAX_READINGS * interval_s:
        return (
            f"must be between 2 x interval_s and {MAX_READINGS} x interval_s"
            f" ({2 * interval_s}..{MAX_READINGS * interval_s} seconds at an interval of {interval_s} s):"
            " a rate needs two readings in its window, and no more than"
            f" {MAX_READINGS} are kept"
        )
    return None


def _path(prefix: str, relative: str) -> str:
    return f"{prefix}.{relative}" if relative else prefix
