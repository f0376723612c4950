"""event_facts: one fact per goal event, and time buckets over them worked out by hand.

The bucket tests feed a fixed history through the projection with chosen timestamps (the
fact time is the instant an event was recorded, so the normal write path cannot place
events in known hours, days and weeks)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from application.command_loop import Idempotency
from application.goals import ProgressUpdate
from application.ports import ReadStore
from domain.goals import AgentGoals, AutoUpdate
from interfaces.bootstrap import System
from projections import event_facts_hourly as hourly
from projections.event_facts import EVENT_TYPES, EventFactsProjection
from projections.event_facts_queries import BUCKETS, EventFactsQueries
from projections.history_queries import GoalHistoryQueries
from projections.tracking import TRACKING_DDL
from tests.integration.support import (
    fresh_read_store,
    meta,
    one_objective,
    rows,
    tenant_events,
    two_objectives,
)

FACT_COLUMNS = "position, type, agent_id, version, actor, payload, overall, value, at, observed_at"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def facts(system: System, tenant: str) -> list[dict[str, Any]]:
    """The tenant's facts, oldest first, with payload and `at` decoded the same on both stores."""
    found = rows(
        system.store, f"SELECT {FACT_COLUMNS} FROM event_facts WHERE tenant = ? ORDER BY position", (tenant,)
    )
    return [
        {
            "position": int(r[0]),
            "type": r[1],
            "agent_id": r[2],
            "version": int(r[3]),
            "actor": r[4],
            "payload": json.loads(r[5]) if isinstance(r[5], str) else r[5],
            "overall": r[6],
            "value": r[7],
            "at": r[8] if isinstance(r[8], datetime) else datetime.fromisoformat(r[8]),
            "observed_at": r[9]
            if r[9] is None or isinstance(r[9], datetime)
            else datetime.fromisoformat(r[9]),
        }
        for r in found
    ]


def positions_after(system: System, after: int) -> list[tuple[int, Any]]:
    found: list[tuple[int, Any]] = []
    while page := system.goals.read_log(after, 1000):
        found.extend(page)
        after = page[-1][0]
    return found


# --- one fact per goal event -----------------------------------------------------------------


def test_every_goal_event_has_one_fact_and_other_events_none(system: System, tenant: str) -> None:
    start = system.goals.log_position()
    goals = system.goals
    goals.set_goals(tenant, "a1", two_objectives(), meta("alice"))
    observed = utc("2026-01-02T03:04:05")
    goals.record_progress(
        tenant,
        ProgressUpdate("a1", {"speed": 30}, {"accuracy": 75}, observed_at=observed),
        meta("bob"),
        idempotency=Idempotency(f"key-{uuid.uuid4().hex}", "fingerprint"),
    )
    goals.change_status(tenant, "a1", "paused", "waiting", meta("carol"))
    goals.configure_auto_update(
        tenant,
        "a1",
        AutoUpdate(True, 60, "http://a1.test/health", None, {"speed": "speed_metric"}),
        meta("dan"),
    )
    goals.set_goals(tenant, "a2", one_objective(), meta("erin"))

    def collector_events(loaded: dict[str, Any]) -> list[AgentGoals]:
        a2: AgentGoals = loaded["a2"]
        a2.collection_failed("unreachable", meta("frank"))
        a2.record_metrics({}, observed, 0.5, meta("frank"))
        a2.check_stagnation(a2.created_on + timedelta(hours=30), 24.0, meta("frank"))
        return [a2]

    goals.execute(tenant, ["a2"], collector_events, meta("frank"), None, None)
    system.clients.create(tenant, "facts-test", ["goals:read"], actor="setup")
    system.runner.catch_up()

    logged = positions_after(system, start)
    goal_events = tenant_events(system, tenant, start)
    found = facts(system, tenant)

    # One fact per goal event, at its position, in log order.
    assert [f["position"] for f in found] == [p for p, _ in goal_events]
    assert [(f["type"], f["agent_id"], f["version"], f["actor"]) for f in found] == [
        ("Registered", "a1", 1, "alice"),
        ("GoalsSet", "a1", 2, "alice"),
        ("ProgressRecorded", "a1", 3, "bob"),
        ("MilestoneReached", "a1", 4, "bob"),  # speed 0 -> 30 crosses 25
        ("MilestoneReached", "a1", 5, "bob"),  # accuracy 0 -> 50 crosses 25 ...
        ("MilestoneReached", "a1", 6, "bob"),  # ... and 50
        ("MilestoneReached", "a1", 7, "bob"),  # overall 0 -> 36.67 crosses 25
        ("StatusChanged", "a1", 8, "carol"),
        ("AutoUpdateConfigured", "a1", 9, "dan"),
        ("Registered", "a2", 1, "erin"),
        ("GoalsSet", "a2", 2, "erin"),
        ("MetricsCollectionFailed", "a2", 3, "frank"),
        ("MetricsCollectionRecovered", "a2", 4, "frank"),
        ("GoalStagnant", "a2", 5, "frank"),
    ]
    assert {f["type"] for f in found} == set(EVENT_TYPES)
    for fact, (_, event) in zip(found, goal_events, strict=True):
        assert fact["at"] == event.timestamp

    by_version = {(f["agent_id"], f["version"]): f for f in found}
    progress = by_version[("a1", 3)]
    # accuracy: KPI 75 between baseline 50 and target 100 = 50%; overall (2*30 + 1*50) / 3
    assert progress["payload"] == {
        "objective_progress": {"speed": 30.0, "accuracy": 50.0},
        "overall_progress": 36.67,
        "previous_overall_progress": 0.0,
        "kpi_values": {"accuracy": 75.0},
        "source": "manual",
        "observed_at": "2026-01-02T03:04:05+00:00",
    }
    assert (progress["overall"], progress["value"], progress["observed_at"]) == (36.67, None, observed)
    milestones = [by_version[("a1", v)] for v in (4, 5, 6, 7)]
    assert [(m["payload"]["objective_id"], m["payload"]["threshold"]) for m in milestones] == [
        ("speed", 25.0),
        ("accuracy", 25.0),
        ("accuracy", 50.0),
        ("overall", 25.0),
    ]
    assert [m["payload"]["progress"] for m in milestones] == [30.0, 50.0, 50.0, 36.67]
    assert [(m["overall"], m["value"]) for m in milestones] == [
        (None, 25.0),
        (None, 25.0),
        (None, 50.0),
        (None, 25.0),
    ]
    assert by_version[("a1", 8)]["payload"] == {"from": "active", "to": "paused", "reason": "waiting"}
    assert by_version[("a1", 9)]["payload"] == {
        "enabled": True,
        "interval_s": 60,
        "health_url": "http://a1.test/health",
        "metrics_url": None,
        "kpi_metrics": {"speed": "speed_metric"},
    }
    assert by_version[("a1", 1)]["payload"] == {}
    assert by_version[("a2", 3)]["payload"] == {"reason": "unreachable"}
    assert by_version[("a2", 4)]["payload"] == {"failed_since": by_version[("a2", 3)]["at"].isoformat()}
    assert by_version[("a2", 5)]["payload"]["since"] == by_version[("a2", 1)]["at"].isoformat()
    goals_set = by_version[("a2", 2)]["payload"]
    assert goals_set["goal_version"] == 1
    assert [o["id"] for o in goals_set["goals"]["primary_objectives"]] == ["o1"]
    assert all(
        f["overall"] is None and f["value"] is None for f in found if f["type"] in {"Registered", "GoalsSet"}
    )
    assert all(f["observed_at"] is None for f in found if f["type"] != "ProgressRecorded")

    # The idempotency record and the OAuth client are in the log, but have no fact.
    others = [(p, type(e).__qualname__) for p, e in logged if not isinstance(e, AgentGoals.Event)]
    assert {name for _, name in others} >= {"IdempotencyRecord.Recorded", "OAuthClient.Registered"}
    marks = ", ".join("?" * len(others))
    assert rows(
        system.store,
        f"SELECT COUNT(*) FROM event_facts WHERE position IN ({marks})",
        tuple(p for p, _ in others),
    ) == [(0,)]
    # ... and the projection still consumed their positions.
    tracked = rows(system.store, "SELECT position FROM projection_tracking WHERE name = 'event_facts'")
    assert tracked == [(logged[-1][0],)]


# --- buckets over a fixed history --------------------------------------------------------------


def fixed_history(tenant: str) -> list[AgentGoals.Event]:
    """Two agents' events with chosen timestamps (UTC). 2026-01-26 and 2026-02-02 are Mondays.

    at                           events (agent)                                  overall  value
    01-30 10:05                  Registered, GoalsSet (a1)
    01-30 10:40                  ProgressRecorded (a1, o1=10)                    10
    01-30 11:15                  ProgressRecorded (a1, o1=30), 2 milestones      30       25, 25
    01-31 09:00                  Registered, GoalsSet (a2)
    01-31 09:30                  ProgressRecorded (a2, o1=60), 4 milestones      60       25, 50, 25, 50
    02-01 23:59:59.999999 (Sun)  StatusChanged active -> paused (a1)
    02-02 00:00 (Mon)            StatusChanged paused -> active (a1)
    02-02 00:30                  ProgressRecorded (a1, o1=80), 4 milestones      80       50, 75, 50, 75
    """
    history: list[AgentGoals.Event] = []

    def at(aggregate: AgentGoals, when: str) -> None:
        moment = utc(when)
        history.extend(dataclasses.replace(e, timestamp=moment) for e in aggregate.collect_events())

    a1 = AgentGoals.start(tenant, "a1", one_objective(), meta("alice"))
    at(a1, "2026-01-30T10:05:00")
    a1.record_progress(meta("alice"), objective_progress={"o1": 10})
    at(a1, "2026-01-30T10:40:00")
    a1.record_progress(meta("alice"), objective_progress={"o1": 30})
    at(a1, "2026-01-30T11:15:00")
    a2 = AgentGoals.start(tenant, "a2", one_objective(), meta("bob"))
    at(a2, "2026-01-31T09:00:00")
    a2.record_progress(meta("bob"), objective_progress={"o1": 60})
    at(a2, "2026-01-31T09:30:00")
    a1.change_status("paused", "hold", meta("alice"))
    at(a1, "2026-02-01T23:59:59.999999")
    a1.change_status("active", "resume", meta("alice"))
    at(a1, "2026-02-02T00:00:00")
    a1.record_progress(meta("alice"), objective_progress={"o1": 80})
    at(a1, "2026-02-02T00:30:00")
    assert len(history) == 20
    return history


def feed(system: System, events: list[AgentGoals.Event]) -> list[int]:
    """Apply the events as one page at positions no other test uses; returns the positions."""
    base = 10**12 + uuid.uuid4().int % 10**9 * 100
    page = [(base + i, e) for i, e in enumerate(events)]
    with system.store.transaction() as tx:
        EventFactsProjection().apply(tx, page)
    return [p for p, _ in page]


def stats(count: int, avg: float, low: float, high: float) -> dict[str, Any]:
    return {"count": count, "avg": pytest.approx(avg), "min": low, "max": high}


@pytest.fixture
def history(system: System, tenant: str) -> list[int]:
    return feed(system, fixed_history(tenant))


def test_hour_buckets(system: System, tenant: str, history: list[int]) -> None:
    assert system.events.buckets(tenant, bucket="hour") == [
        {
            "bucket": "2026-01-30T10:00:00+00:00",
            "count": 3,
            "overall": stats(1, 10, 10, 10),
            "value": None,
            "count_by_type": {"Registered": 1, "GoalsSet": 1, "ProgressRecorded": 1},
        },
        {
            "bucket": "2026-01-30T11:00:00+00:00",
            "count": 3,
            "overall": stats(1, 30, 30, 30),
            "value": stats(2, 25, 25, 25),
            "count_by_type": {"ProgressRecorded": 1, "MilestoneReached": 2},
        },
        {
            "bucket": "2026-01-31T09:00:00+00:00",
            "count": 7,
            "overall": stats(1, 60, 60, 60),
            "value": stats(4, 37.5, 25, 50),
            "count_by_type": {"Registered": 1, "GoalsSet": 1, "ProgressRecorded": 1, "MilestoneReached": 4},
        },
        {
            "bucket": "2026-02-01T23:00:00+00:00",
            "count": 1,
            "overall": None,
            "value": None,
            "count_by_type": {"StatusChanged": 1},
        },
        {
            "bucket": "2026-02-02T00:00:00+00:00",
            "count": 6,
            "overall": stats(1, 80, 80, 80),
            "value": stats(4, 62.5, 50, 75),
            "count_by_type": {"StatusChanged": 1, "ProgressRecorded": 1, "MilestoneReached": 4},
        },
    ]


def test_day_buckets(system: System, tenant: str, history: list[int]) -> None:
    days = system.events.buckets(tenant, bucket="day")
    assert [(d["bucket"], d["count"], d["overall"], d["value"]) for d in days] == [
        ("2026-01-30T00:00:00+00:00", 6, stats(2, 20, 10, 30), stats(2, 25, 25, 25)),
        ("2026-01-31T00:00:00+00:00", 7, stats(1, 60, 60, 60), stats(4, 37.5, 25, 50)),
        ("2026-02-01T00:00:00+00:00", 1, None, None),
        ("2026-02-02T00:00:00+00:00", 6, stats(1, 80, 80, 80), stats(4, 62.5, 50, 75)),
    ]
    assert days[0]["count_by_type"] == {
        "Registered": 1,
        "GoalsSet": 1,
        "ProgressRecorded": 2,
        "MilestoneReached": 2,
    }


def test_week_buckets_start_on_monday(system: System, tenant: str, history: list[int]) -> None:
    # The last microsecond of Sunday 02-01 belongs to the week of Monday 01-26.
    assert system.events.buckets(tenant, bucket="week") == [
        {
            "bucket": "2026-01-26T00:00:00+00:00",
            "count": 14,
            "overall": stats(3, (10 + 30 + 60) / 3, 10, 60),
            "value": stats(6, (25 + 25 + 25 + 50 + 25 + 50) / 6, 25, 50),
            "count_by_type": {
                "Registered": 2,
                "GoalsSet": 2,
                "ProgressRecorded": 3,
                "MilestoneReached": 6,
                "StatusChanged": 1,
            },
        },
        {
            "bucket": "2026-02-02T00:00:00+00:00",
            "count": 6,
            "overall": stats(1, 80, 80, 80),
            "value": stats(4, 62.5, 50, 75),
            "count_by_type": {"StatusChanged": 1, "ProgressRecorded": 1, "MilestoneReached": 4},
        },
    ]


def test_filters_by_type_agent_and_time(system: System, tenant: str, history: list[int]) -> None:
    by_type = system.events.buckets(tenant, type="ProgressRecorded", bucket="day")
    assert by_type == [  # no count_by_type under a type filter
        {"bucket": "2026-01-30T00:00:00+00:00", "count": 2, "overall": stats(2, 20, 10, 30), "value": None},
        {"bucket": "2026-01-31T00:00:00+00:00", "count": 1, "overall": stats(1, 60, 60, 60), "value": None},
        {"bucket": "2026-02-02T00:00:00+00:00", "count": 1, "overall": stats(1, 80, 80, 80), "value": None},
    ]
    milestones = system.events.buckets(tenant, type="MilestoneReached", bucket="week")
    assert [(w["bucket"], w["count"], w["overall"], w["value"]) for w in milestones] == [
        ("2026-01-26T00:00:00+00:00", 6, None, stats(6, 200 / 6, 25, 50)),
        ("2026-02-02T00:00:00+00:00", 4, None, stats(4, 62.5, 50, 75)),
    ]

    a1 = system.events.buckets(tenant, agent="a1", bucket="week")
    assert [(w["bucket"], w["count"], w["overall"], w["value"]) for w in a1] == [
        ("2026-01-26T00:00:00+00:00", 7, stats(2, 20, 10, 30), stats(2, 25, 25, 25)),
        ("2026-02-02T00:00:00+00:00", 6, stats(1, 80, 80, 80), stats(4, 62.5, 50, 75)),
    ]
    assert a1[0]["count_by_type"] == {
        "Registered": 1,
        "GoalsSet": 1,
        "ProgressRecorded": 2,
        "MilestoneReached": 2,
        "StatusChanged": 1,
    }

    # from is inclusive, to exclusive; an offset other than UTC means the same instant.
    window = system.events.buckets(
        tenant,
        start=datetime(2026, 1, 31, 10, 30, tzinfo=timezone(timedelta(hours=1))),  # 09:30 UTC
        end=utc("2026-02-02T00:30:00"),
        bucket="day",
    )
    assert [(d["bucket"], d["count"], d["overall"], d["value"]) for d in window] == [
        ("2026-01-31T00:00:00+00:00", 5, stats(1, 60, 60, 60), stats(4, 37.5, 25, 50)),
        ("2026-02-01T00:00:00+00:00", 1, None, None),
        ("2026-02-02T00:00:00+00:00", 1, None, None),
    ]
    assert system.events.buckets(tenant, agent="a2", type="StatusChanged") == []


def test_buckets_of_one_tenant_only(system: System, tenant: str, history: list[int]) -> None:
    other = f"{tenant}-other"
    feed(system, fixed_history(other)[:3])
    assert [h["count"] for h in system.events.buckets(other, bucket="week")] == [3]
    assert [h["count"] for h in system.events.buckets(tenant, bucket="week")] == [14, 6]
    assert system.events.buckets(f"{tenant}-nobody", bucket="day") == []


def test_recorded_events_land_in_the_bucket_of_their_recording(system: System, tenant: str) -> None:
    before = datetime.now(UTC)
    system.goals.set_goals(tenant, "live", one_objective(), meta())
    system.goals.record_progress(tenant, ProgressUpdate("live", {"o1": 40}), meta())
    after = datetime.now(UTC)
    system.runner.catch_up()
    hours = system.events.buckets(tenant, start=before - timedelta(hours=1), end=after + timedelta(hours=1))
    # Registered, GoalsSet, ProgressRecorded 40, o1@25 and overall@25: one hour, or two if
    # the hour turned during the test.
    assert sum(h["count"] for h in hours) == 5
    assert {h["bucket"] for h in hours} <= {
        before.replace(minute=0, second=0, microsecond=0).isoformat(),
        after.replace(minute=0, second=0, microsecond=0).isoformat(),
    }
    merged: dict[str, int] = {}
    for h in hours:
        for name, n in h["count_by_type"].items():
            merged[name] = merged.get(name, 0) + n
    assert merged == {"Registered": 1, "GoalsSet": 1, "ProgressRecorded": 1, "MilestoneReached": 2}


# --- the hourly rollup answers what the facts answer --------------------------------------------

# Bounds on the hours of the fixed history: none, whole hours, inside an hour, on an event's
# instant (inclusive as `from`, exclusive as `to`), a microsecond either side of one.
BOUNDS: tuple[datetime | None, ...] = (
    None,
    utc("2026-01-30T10:00:00"),
    utc("2026-01-30T10:39:59.999999"),
    utc("2026-01-30T10:40:00"),
    utc("2026-01-30T10:40:00.000001"),
    utc("2026-01-30T11:20:00"),
    utc("2026-01-31T09:00:00"),
    utc("2026-01-31T09:45:00"),
    utc("2026-02-01T23:59:59.999999"),
    utc("2026-02-02T00:00:00"),
    utc("2026-02-02T00:30:00"),
    utc("2026-02-03T00:00:00"),
)


def approx_avgs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Buckets with their averages approximate: the rollup adds the same numbers in another order."""

    def approx(figures: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if figures is None else {**figures, "avg": pytest.approx(figures["avg"], rel=1e-12)}

    return [{**item, "overall": approx(item["overall"]), "value": approx(item["value"])} for item in items]


def feed_in_pages(system: System, events: list[AgentGoals.Event], sizes: tuple[int, ...]) -> None:
    """Apply the events in pages of the given sizes (in turn), so that hours span pages."""
    base = 10**12 + uuid.uuid4().int % 10**9 * 100
    at, turn = 0, 0
    while at < len(events):
        size = sizes[turn % len(sizes)]
        with system.store.transaction() as tx:
            EventFactsProjection().apply(
                tx, [(base + i, events[i]) for i in range(at, min(at + size, len(events)))]
            )
        at, turn = at + size, turn + 1


def test_rollup_answers_what_the_facts_answer(system: System, tenant: str) -> None:
    feed_in_pages(system, fixed_history(tenant), sizes=(1, 2, 3, 5))
    feed(system, fixed_history(f"{tenant}-other"))  # the same hours, another tenant
    found = 0
    for bucket in BUCKETS:
        for type_ in (None, *EVENT_TYPES):
            for start in BOUNDS:
                for end in BOUNDS:
                    if start is not None and end is not None and start > end:
                        continue
                    expected = system.events.buckets_from_facts(
                        tenant, type=type_, start=start, end=end, bucket=bucket
                    )
                    answer = system.events.buckets(tenant, type=type_, start=start, end=end, bucket=bucket)
                    assert answer == approx_avgs(expected), (type_, start, end, bucket)
                    found += sum(b["count"] for b in expected)
    assert found > 1000  # the comparisons were not of empty answers


def test_rollup_of_the_fixed_history(system: System, tenant: str) -> None:
    feed_in_pages(system, fixed_history(tenant), sizes=(4, 1))
    hours = rows(
        system.store,
        "SELECT type, hour, events, overall_n, overall_sum, overall_min, overall_max,"
        " value_n, value_sum, value_min, value_max FROM event_facts_hourly WHERE tenant = ?"
        " ORDER BY hour, type",
        (tenant,),
    )
    found = [
        (r[0], r[1] if isinstance(r[1], datetime) else datetime.fromisoformat(r[1]), *r[2:]) for r in hours
    ]
    assert found == [
        ("GoalsSet", utc("2026-01-30T10:00:00"), 1, 0, 0, None, None, 0, 0, None, None),
        ("ProgressRecorded", utc("2026-01-30T10:00:00"), 1, 1, 10, 10, 10, 0, 0, None, None),
        ("Registered", utc("2026-01-30T10:00:00"), 1, 0, 0, None, None, 0, 0, None, None),
        ("MilestoneReached", utc("2026-01-30T11:00:00"), 2, 0, 0, None, None, 2, 50, 25, 25),
        ("ProgressRecorded", utc("2026-01-30T11:00:00"), 1, 1, 30, 30, 30, 0, 0, None, None),
        ("GoalsSet", utc("2026-01-31T09:00:00"), 1, 0, 0, None, None, 0, 0, None, None),
        ("MilestoneReached", utc("2026-01-31T09:00:00"), 4, 0, 0, None, None, 4, 150, 25, 50),
        ("ProgressRecorded", utc("2026-01-31T09:00:00"), 1, 1, 60, 60, 60, 0, 0, None, None),
        ("Registered", utc("2026-01-31T09:00:00"), 1, 0, 0, None, None, 0, 0, None, None),
        ("StatusChanged", utc("2026-02-01T23:00:00"), 1, 0, 0, None, None, 0, 0, None, None),
        ("MilestoneReached", utc("2026-02-02T00:00:00"), 4, 0, 0, None, None, 4, 250, 50, 75),
        ("ProgressRecorded", utc("2026-02-02T00:00:00"), 1, 1, 80, 80, 80, 0, 0, None, None),
        ("StatusChanged", utc("2026-02-02T00:00:00"), 1, 0, 0, None, None, 0, 0, None, None),
    ]


def test_facts_written_before_the_rollup_and_observed_at_get_both_when_set_up(
    system: System, tenant: str, tmp_path: Path
) -> None:
    feed(system, fixed_history(tenant))
    expected = hourly_rows(system.store, tenant)
    with fresh_read_store(system.settings, tmp_path) as store:
        projection = EventFactsProjection()
        with store.transaction() as tx:
            projection.create_tables(tx)
            projection.apply(tx, [(i + 1, e) for i, e in enumerate(fixed_history(tenant))])
        observed = rows(store, "SELECT position, observed_at FROM event_facts ORDER BY position")
        assert sum(o is not None for _, o in observed) == 4
        with store.transaction() as tx:  # a store written before either existed
            tx.execute("DROP TABLE event_facts_hourly")
            tx.execute("ALTER TABLE event_facts DROP COLUMN observed_at")
        with store.transaction() as tx:
            projection.create_tables(tx)
        assert hourly_rows(store, tenant) == expected
        assert rows(store, "SELECT position, observed_at FROM event_facts ORDER BY position") == observed
        queries = EventFactsQueries(store)
        for bucket in BUCKETS:
            assert queries.buckets(tenant, bucket=bucket) == approx_avgs(
                queries.buckets_from_facts(tenant, bucket=bucket)
            )

        # Facts dropped (a reset of the read models) take their rollup with them.
        with store.transaction() as tx:
            tx.execute("DROP TABLE event_facts")
        with store.transaction() as tx:
            projection.create_tables(tx)
        assert hourly_rows(store, tenant) == []
        assert queries.buckets(tenant, bucket="day") == []


def test_facts_written_before_they_kept_request_ids_take_them_from_the_old_history_table(
    system: System, tenant: str, tmp_path: Path
) -> None:
    """The history used to be a table of its own (goal_history); the facts now serve it."""
    events = [dataclasses.replace(e, request_id=f"req-{i}") for i, e in enumerate(fixed_history(tenant))]
    page = [(i + 1, e) for i, e in enumerate(events)]
    with fresh_read_store(system.settings, tmp_path) as store:
        projection = EventFactsProjection()
        with store.transaction() as tx:
            tx.execute(TRACKING_DDL)
            projection.create_tables(tx)
            projection.apply(tx, page)
        history = GoalHistoryQueries(store)
        expected = [history.history(tenant, agent, after=0, limit=100).items for agent in ("a1", "a2")]
        assert {item["request_id"] for items in expected for item in items} >= {"req-1", "req-2"}
        with store.transaction() as tx:  # the layout of that time
            tx.execute("CREATE TABLE goal_history (position BIGINT PRIMARY KEY, request_id TEXT NOT NULL)")
            tx.executemany(
                "INSERT INTO goal_history (position, request_id) VALUES (?, ?)",
                [(p, e.request_id) for p, e in page if not isinstance(e, AgentGoals.Registered)],
            )
            tx.execute(
                "INSERT INTO projection_tracking (name, position, state, updated_at)"
                " VALUES ('goal_history', ?, 'live', 0)",
                (len(page),),
            )
            tx.execute("ALTER TABLE event_facts DROP COLUMN request_id")

        with store.transaction() as tx:
            projection.create_tables(tx)
        assert [
            history.history(tenant, agent, after=0, limit=100).items for agent in ("a1", "a2")
        ] == expected
        assert rows(store, "SELECT name FROM projection_tracking WHERE name = 'goal_history'") == []
        with store.transaction() as tx, pytest.raises(Exception, match="goal_history"):
            tx.execute("SELECT 1 FROM goal_history")


def test_an_old_history_table_beside_facts_that_keep_request_ids_is_retired_too(
    system: System, tenant: str, tmp_path: Path
) -> None:
    page = [(i + 1, e) for i, e in enumerate(fixed_history(tenant))]
    with fresh_read_store(system.settings, tmp_path) as store:
        projection = EventFactsProjection()
        with store.transaction() as tx:
            tx.execute(TRACKING_DDL)
            tx.execute("CREATE TABLE goal_history (position BIGINT PRIMARY KEY, request_id TEXT NOT NULL)")
            tx.execute(
                "INSERT INTO projection_tracking (name, position, state, updated_at)"
                " VALUES ('goal_history', 3, 'live', 0)"
            )
            projection.create_tables(tx)
            projection.apply(tx, page)
        assert rows(store, "SELECT name FROM projection_tracking WHERE name = 'goal_history'") == []
        with store.transaction() as tx, pytest.raises(Exception, match="goal_history"):
            tx.execute("SELECT 1 FROM goal_history")


def hourly_rows(store: ReadStore, tenant: str) -> list[tuple[Any, ...]]:
    return rows(
        store,
        f"SELECT {', '.join(hourly.COLUMNS)} FROM event_facts_hourly WHERE tenant = ? ORDER BY hour, type",
        (tenant,),
    )


# --- PostgreSQL: monthly partitions ------------------------------------------------------------


def partitions(system: System) -> set[str]:
    found = rows(
        system.store,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'event_facts'::regclass",
    )
    return {r[0] for r in found}


def partition_of_rows(system: System, tenant: str) -> list[tuple[int, str]]:
    return [
        (int(r[0]), r[1])
        for r in rows(
            system.store,
            "SELECT position, tableoid::regclass::text FROM event_facts WHERE tenant = ? ORDER BY position",
            (tenant,),
        )
    ]


def test_postgres_facts_land_in_month_partitions(system: System, tenant: str, history: list[int]) -> None:
    if system.store.dialect != "postgres":
        pytest.skip("partitions are a PostgreSQL feature")
    assert {"event_facts_default", "event_facts_2026_01", "event_facts_2026_02"} <= partitions(system)
    # The first 13 facts (01-30 and 01-31) are January's, the other 7 February's.
    assert partition_of_rows(system, tenant) == [
        (p, "event_facts_2026_01" if i < 13 else "event_facts_2026_02") for i, p in enumerate(history)
    ]

    # Events recorded now land in the partition of the current month, not in the default.
    system.goals.set_goals(tenant, "now", one_objective(), meta())
    system.runner.catch_up()
    now = [f for f in facts(system, tenant) if f["agent_id"] == "now"]
    assert len(now) == 2
    months = {f"event_facts_{f['at'].astimezone(UTC):%Y_%m}" for f in now}
    by_position = dict(partition_of_rows(system, tenant))
    assert {by_position[f["position"]] for f in now} == months
    assert rows(system.store, "SELECT COUNT(*) FROM event_facts_default WHERE tenant = ?", (tenant,)) == [
        (0,)
    ]


def test_postgres_moves_stray_default_rows_into_a_new_month_partition(system: System, tenant: str) -> None:
    if system.store.dialect != "postgres":
        pytest.skip("partitions are a PostgreSQL feature")
    year = next(y for y in range(2090, 2190) if f"event_facts_{y}_07" not in partitions(system))
    events = [
        dataclasses.replace(e, timestamp=datetime(year, 7, 10 + i, 12, tzinfo=UTC))
        for i, e in enumerate(fixed_history(tenant)[:3])
    ]
    base = 10**12 + uuid.uuid4().int % 10**9 * 100
    # A fact of a month without a partition, as an older projection might have left it.
    with system.store.transaction() as tx:
        tx.execute(
            "INSERT INTO event_facts (position, at, tenant, agent_id, type, version, actor, payload)"
            " VALUES (?, ?, ?, 'a1', 'Registered', 1, 'old', '{}'::jsonb)",
            (base - 1, datetime(year, 7, 1, tzinfo=UTC), tenant),
        )
    assert partition_of_rows(system, tenant) == [(base - 1, "event_facts_default")]

    with system.store.transaction() as tx:
        EventFactsProjection().apply(tx, [(base + i, e) for i, e in enumerate(events)])

    month = f"event_facts_{year}_07"
    assert month in partitions(system)
    assert partition_of_rows(system, tenant) == [(p, month) for p in (base - 1, base, base + 1, base + 2)]
    stray_and_fed = [datetime(year, 7, 1, tzinfo=UTC), *(e.timestamp for e in events)]
    weeks = Counter(monday(t) for t in stray_and_fed)
    # read from the facts: the stray row was written behind the projection's back, so its
    # hourly rollup does not count it
    assert {
        (b["bucket"], b["count"]) for b in system.events.buckets_from_facts(tenant, bucket="week")
    } == set(weeks.items())


def monday(moment: datetime) -> str:
    """The ISO instant of the Monday 00:00 UTC starting the week of `moment`."""
    day = moment.astimezone(UTC) - timedelta(days=moment.weekday())
    return day.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
