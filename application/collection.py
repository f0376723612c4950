"""Metrics collection: an agent's live metrics -> KPI values -> progress, through the domain.

One poll reads the agent's endpoints (a `Scraper`), computes each mapped objective's KPI
value (`domain.kpi_values`; a rate from the counter readings kept by `CounterReadings`, never
in the log), and hands the values to the aggregate, which records progress only when it moved
enough, and a failed or recovered collection only on a change of state. So a steady agent,
and an agent failing poll after poll, write nothing.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from application.command_loop import Idempotency
from application.goals import GoalsApp
from application.preconditions import IfMatch
from application.results import CommandResult
from domain.auto_update import AutoUpdate, KpiMapping
from domain.errors import InvalidCommand
from domain.goals import AgentGoals
from domain.kpi_values import MissingMetric, Reading, Sample, UnusableMetric, kpi_value, series_value
from domain.limits import MAX_REASON
from domain.meta import Meta
from domain.status import Status

COLLECTOR = Meta(actor="collector")
STAGNATION = Meta(actor="stagnation-check")
# How a poll ended, as counted in a2a_goals_metrics_collections_total{status}.
STATUSES = ("ok", "unreachable", "timeout", "status", "unparsable", "missing_metric")
SKIPPED = "skipped"  # no poll: not configured, disabled, or the goal is not active
# What an agent's output can make go wrong while its KPI values are computed: its fault, an
# `unparsable` failure, never a crash of the poll.
COMPUTE_ERRORS = (ValueError, ArithmeticError, TypeError, RecursionError)


class ScrapeFailed(Exception):
    """A scrape gave nothing to use; `status` is one of STATUSES."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Scraper(Protocol):
    def scrape(self, health_url: str | None, metrics_url: str | None) -> list[Sample]: ...


class CounterReadings(Protocol):
    """Recent readings of counters, for rates: kept where every worker reads them."""

    def observe(self, key: str, at: float, value: float, window_s: float) -> list[Reading]:
        """Add a reading; the readings of `key` within `window_s` of `at`, oldest first."""
        ...


# The problem with a URL the collector could never fetch (None: none).
UrlCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class Stall:
    tenant: str
    agent_id: str


class MetricsCollection:
    """The use cases of the collector: configure, poll one agent, check for stalls."""

    def __init__(
        self,
        goals: GoalsApp,
        scraper: Scraper,
        readings: CounterReadings,
        check_url: UrlCheck,
        *,
        min_delta: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._goals = goals
        self._scraper = scraper
        self._readings = readings
        self._check_url = check_url
        self._min_delta = min_delta
        self._clock = clock

    def configure(
        self,
        tenant: str,
        agent_id: str,
        config: AutoUpdate,
        meta: Meta,
        *,
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Store the configuration, once its URLs pass the outbound guard (else a field error)."""
        errors = {
            name: problem
            for name, url in (("health_url", config.health_url), ("metrics_url", config.metrics_url))
            if url and (problem := self._check_url(url))
        }
        if errors:
            raise InvalidCommand(errors)
        return self._goals.configure_auto_update(
            tenant, agent_id, config, meta, expected_version=expected_version, idempotency=idempotency
        )

    def collect(self, tenant: str, agent_id: str) -> str:
        """Poll one agent and record what changed; how the poll ended (STATUSES or SKIPPED)."""
        goals = self._goals.current(tenant, agent_id)
        if goals is None or not self._polled(goals):
            return SKIPPED
        config = goals.auto_update
        assert config is not None
        now = self._clock()
        try:
            samples = self._scraper.scrape(config.health_url, config.metrics_url)
            values = self._values(tenant, agent_id, self._current(goals, config.kpi_metrics), samples, now)
        except ScrapeFailed as failure:
            return self._failed(tenant, agent_id, failure.status, failure.reason)
        except MissingMetric as missing:
            return self._failed(
                tenant, agent_id, "missing_metric", f"the metrics of the agent have no sample of {missing.metric}"
            )
        except UnusableMetric as unusable:
            return self._failed(tenant, agent_id, "unparsable", str(unusable))
        except COMPUTE_ERRORS:
            return self._failed(
                tenant, agent_id, "unparsable", "the metrics of the agent could not be computed into KPI values"
            )
        observed = datetime.fromtimestamp(now, UTC)
        self._record(
            tenant, agent_id, lambda g: g.record_metrics(values, observed, self._min_delta, COLLECTOR)
        )
        return "ok"

    @staticmethod
    def _current(goals: AgentGoals, mappings: Mapping[str, KpiMapping]) -> dict[str, KpiMapping]:
        """The mappings of the goals' objectives now: a later revision may have removed some."""
        objective_ids = set(goals.definition.objective_ids()) if goals.definition is not None else set()
        return {k: m for k, m in mappings.items() if k in objective_ids}

    def _failed(self, tenant: str, agent_id: str, status: str, reason: str) -> str:
        """Record a failed poll (once per transition, the aggregate decides); its status."""
        shown = clean_reason(reason)
        self._record(tenant, agent_id, lambda g: g.collection_failed(shown, COLLECTOR))
        return status

    @staticmethod
    def _polled(goals: AgentGoals) -> bool:
        config = goals.auto_update
        return config is not None and config.enabled and goals.status == Status.ACTIVE

    def check_stagnation(self, stalls: Iterable[Stall], hours: float) -> int:
        """Record each stalled goal's stall, once per stall; how many were recorded."""
        recorded = 0
        now = datetime.fromtimestamp(self._clock(), UTC)
        for stall in stalls:
            recorded += self._record(
                stall.tenant,
                stall.agent_id,
                lambda g: g.check_stagnation(now, hours, STAGNATION),
                polled_only=False,
            )
        return recorded

    def _values(
        self,
        tenant: str,
        agent_id: str,
        mappings: Mapping[str, KpiMapping],
        samples: list[Sample],
        now: float,
    ) -> dict[str, float]:
        values: dict[str, float] = {}
        for objective_id, mapping in mappings.items():
            readings: list[Reading] = []
            if mapping.aggregation == "rate":
                assert mapping.window_s is not None
                counter = series_value(samples, mapping.series)
                key = f"{tenant}\x1f{agent_id}\x1f{objective_id}\x1f{mapping.as_json()}"
                readings = self._readings.observe(key, now, counter, mapping.window_s)
            value = kpi_value(mapping, samples, readings)
            if value is not None:
                values[objective_id] = value
        return values

    def _record(
        self, tenant: str, agent_id: str, decide: Callable[[AgentGoals], None], *, polled_only: bool = True
    ) -> bool:
        """Let the aggregate decide, through the command loop: whether it wrote anything."""
        wrote = False

        def change(loaded: dict[str, AgentGoals | None]) -> list[AgentGoals]:
            nonlocal wrote
            goals = loaded[agent_id]
            if goals is None or (polled_only and not self._polled(goals)):
                wrote = False
                return []  # disabled or paused since the poll was read: nothing to record
            decide(goals)
            wrote = bool(goals.pending_events)
            return [goals]

        self._goals.execute(tenant, [agent_id], change, COLLECTOR, None, None)
        return wrote


def clean_reason(reason: str) -> str:
    """A failure reason fit to store and show: without control or surrogate characters (any
    part of it may come from an agent), at most MAX_REASON characters."""
    kept = "".join(c for c in reason if unicodedata.category(c) not in ("Cc", "Cs"))
    return kept if len(kept) <= MAX_REASON else kept[: MAX_REASON - 1] + "\u2026"
