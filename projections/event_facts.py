"""event_facts: one row per AgentGoals event, for aggregates over the event stream and for
each agent's timeline (the goal history reads its pages from here, see `history_queries`).

Each fact keeps the event's type, agent, recorded instant (`at`), log position, aggregate
version, actor, request id and data (`payload`, JSON, as the history shows it), plus the
numbers bucketed aggregates need without opening the JSON: `overall` (overall progress of a
ProgressRecorded) and `value` (threshold of a MilestoneReached), and `observed_at` (when a
ProgressRecorded was observed).

The facts are rolled up per tenant, type and UTC hour in `event_facts_hourly` (see that
module), in the same transaction: buckets read whole hours from there.

Its tables, partitions and migrations are in `event_facts_tables`, the queries over it in
`event_facts_queries`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from application.json_encoding import encode_json
from application.ports import Tx
from domain.goals import AgentGoals
from projections import event_facts_hourly as hourly
from projections.event_facts_hourly import Hours
from projections.event_facts_tables import COLUMNS, create_tables, ensure_month_partition
from projections.instants import sqlite_instant, utc
from projections.projection import LogPage
from projections.views import auto_update_json, definition_json

# The types a fact can have: the names of the AgentGoals event classes.
EVENT_TYPES: tuple[str, ...] = tuple(
    cls.__name__
    for cls in (
        AgentGoals.Registered,
        AgentGoals.GoalsSet,
        AgentGoals.ProgressRecorded,
        AgentGoals.MilestoneReached,
        AgentGoals.StatusChanged,
        AgentGoals.AutoUpdateConfigured,
        AgentGoals.MetricsCollectionFailed,
        AgentGoals.MetricsCollectionRecovered,
        AgentGoals.GoalStagnant,
    )
)


def fact_type(event: AgentGoals.Event) -> str:
    return type(event).__name__


def history_data(event: AgentGoals.Event) -> dict[str, Any] | None:
    """The data of an event as the history shows it (None for Registered). It is for orjson,
    which writes a datetime as ISO 8601 text, exactly as `datetime.isoformat()` does."""
    match event:
        case AgentGoals.GoalsSet():
            return {
                "goal_version": event.goal_version,
                "goals": definition_json(event.definition),
                "target_date": event.definition.target_date,
            }
        case AgentGoals.ProgressRecorded():
            return {
                "objective_progress": event.objective_progress,
                "overall_progress": event.overall_progress,
                "previous_overall_progress": event.previous_overall,
                "kpi_values": event.kpi_values,
                "source": event.source,
                "observed_at": event.observed_at,
            }
        case AgentGoals.MilestoneReached():
            return {
                "objective_id": event.objective_id,
                "threshold": event.threshold,
                "goal_version": event.goal_version,
                "progress": event.progress,
            }
        case AgentGoals.StatusChanged():
            return {
                "from": event.from_status,
                "to": event.to_status,
                "reason": event.reason,
            }
        case AgentGoals.AutoUpdateConfigured():
            return auto_update_json(event.config) or {}
        case AgentGoals.MetricsCollectionFailed():
            return {"reason": event.reason}
        case AgentGoals.MetricsCollectionRecovered():
            return {"failed_since": event.failed_since}
        case AgentGoals.GoalStagnant():
            return {"since": event.since, "hours": event.hours}
    return None


def fact_payload(event: AgentGoals.Event) -> bytes:
    """The event's data as JSON (UTF-8), as the goal history shows it ({} for Registered)."""
    data = history_data(event)
    # from_log: every text of an event comes from the log, whose writes refuse NUL
    # (test_what_a_read_model_could_not_write_is_refused_before_it_is_stored)
    return encode_json(data, from_log=True) if data is not None else b"{}"


def fact_numbers(event: AgentGoals.Event) -> tuple[float | None, float | None]:
    """(overall, value): overall progress of a ProgressRecorded, threshold of a MilestoneReached."""
    if isinstance(event, AgentGoals.ProgressRecorded):
        return float(event.overall_progress), None
    if isinstance(event, AgentGoals.MilestoneReached):
        return None, float(event.threshold)
    return None, None


def fact_observed(event: AgentGoals.Event) -> datetime | None:
    """When a ProgressRecorded was observed (UTC); None for other events."""
    return utc(event.observed_at) if isinstance(event, AgentGoals.ProgressRecorded) else None


class EventFactsProjection:
    """Remembers the months whose partitions it has seen, so that a page reads nothing
    (a read in a pipelined page waits for the page before it to commit)."""

    name = "event_facts"
    # µs of replay per event (ops/bench/projections.py, 1M events): how rebuilds share the work
    replay_cost = 13
    tables = ("event_facts", hourly.TABLE)

    def __init__(self) -> None:
        self._months: set[tuple[int, int]] = set()

    def fresh(self) -> EventFactsProjection:
        return EventFactsProjection()

    def forget(self) -> None:
        self._months.clear()

    def create_tables(self, tx: Tx) -> None:
        create_tables(tx)

    def apply(self, tx: Tx, events: LogPage) -> None:
        postgres = tx.dialect == "postgres"
        rows: list[tuple[Any, ...]] = []
        months: set[tuple[int, int]] = set()
        hours = Hours()
        for position, event in events:
            if not isinstance(event, AgentGoals.Event):
                continue
            overall, value = fact_numbers(event)
            observed = fact_observed(event)
            at = utc(event.timestamp)
            kind = fact_type(event)
            payload = fact_payload(event)  # jsonb takes the bytes as they are
            months.add((at.year, at.month))
            hours.add(event.tenant, kind, at, overall, value)
            rows.append(
                (
                    position,
                    at if postgres else sqlite_instant(at),
                    event.tenant,
                    event.agent_id,
                    kind,
                    event.originator_version,
                    event.actor,
                    event.request_id,
                    payload if postgres else payload.decode(),
                    overall,
                    value,
                    observed if postgres or observed is None else sqlite_instant(observed),
                )
            )
        if not rows:
            return
        if postgres:
            for year, month in sorted(months - self._months):
                ensure_month_partition(tx, year, month)
            self._months |= months
        tx.append_rows("event_facts", COLUMNS.split(", "), rows)
        hours.write(tx)
