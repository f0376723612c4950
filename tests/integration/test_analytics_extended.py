"""The extended analytics (distribution, milestones per day and week, status transitions,
stagnation, velocity, forecasts, at-risk, progress series) on fixed histories, against figures
worked out by hand, on SQLite and on PostgreSQL.

Per-agent figures use progress recorded through the application with fixed `observed_at`.
System figures that depend on when events were recorded use a hand-built timeline: events of
an in-memory aggregate (never saved to the log) with timestamps set by hand, applied through
the projections inside `system.store.transaction()` at positions far beyond the log's."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from application.goals import ProgressUpdate
from domain.errors import InvalidCommand
from interfaces.bootstrap import System
from projections.event_facts import EventFactsProjection
from projections.goal_progress import GoalProgressProjection
from tests.integration.support import Timeline, meta, one_objective

# --- per agent: progress recorded through the application, observed at fixed instants --------

BASE = datetime(2024, 3, 1, tzinfo=UTC)
NOW = datetime(2024, 3, 4, 12, tzinfo=UTC)


def _record(system: System, tenant: str, agent: str, *points: tuple[datetime, float]) -> None:
    for observed_at, value in points:
        system.goals.record_progress(
            tenant, ProgressUpdate(agent, {"o1": value}, observed_at=observed_at), meta()
        )


def _day(days: float) -> datetime:
    return BASE + timedelta(days=days)


def _agent(system: System, tenant: str, agent: str, **options: Any) -> dict[str, Any]:
    figures = system.analytics.agent(tenant, agent, **{"now": NOW, **options})
    assert figures is not None
    return figures


@pytest.fixture
def paced(system: System, tenant: str) -> System:
    """v1 (target 2024-03-06): 0 on Feb 1, then 10, 20, 30, 60 at midnight on Mar 1..4."""
    system.goals.set_goals(
        tenant, "v1", dataclasses.replace(one_objective(), target_date="2024-03-06"), meta()
    )
    _record(system, tenant, "v1", (datetime(2024, 2, 1, tzinfo=UTC), 0), (_day(0), 10), (_day(1), 20))
    _record(system, tenant, "v1", (_day(2), 30), (_day(3), 60))
    system.runner.catch_up()
    return system


def test_velocity_and_forecast_over_the_window(paced: System, tenant: str) -> None:
    # 14 days before NOW: Feb 19 12:00, so the Feb 1 point is out. Points (days, %): (0, 10),
    # (1, 20), (2, 30), (3, 60). Pairwise slopes: 10, 10, 50/3, 10, 20, 30.
    figures = _agent(paced, tenant, "v1")
    assert figures["velocity"] == pytest.approx((10 + 50 / 3) / 2, abs=1e-4)  # median: 13.3333
    # from 60 on Mar 4 00:00, 40 points to go: 3 days at 13.33/day -> Mar 7; the 75th
    # percentile slope 19.17 (rank 3.75) -> 2.09 days -> Mar 6; the 25th (10) -> 4 days -> Mar 8
    assert figures["forecast"] == {"completion": "2024-03-07", "low": "2024-03-06", "high": "2024-03-08"}
    assert figures["at_risk"] is True  # Mar 7 is after the target Mar 6
    assert figures["progress_series"] == [
        {"bucket": "2024-03-01", "overall_progress": 10.0},
        {"bucket": "2024-03-02", "overall_progress": 20.0},
        {"bucket": "2024-03-03", "overall_progress": 30.0},
        {"bucket": "2024-03-04", "overall_progress": 60.0},
    ]
    # the existing figures are still there
    assert figures["overall_progress"] == 60.0
    assert figures["updates"] == 5


def test_a_shorter_window_sees_fewer_points(paced: System, tenant: str) -> None:
    # 2 days: from Mar 2 12:00, points (2, 30) and (3, 60): one slope, 30/day; 40 to go -> 1.33 days
    figures = _agent(paced, tenant, "v1", window_days=2)
    assert figures["velocity"] == 30.0
    assert figures["forecast"] == {"completion": "2024-03-05", "low": "2024-03-05", "high": "2024-03-05"}
    assert figures["at_risk"] is False
    assert [p["bucket"] for p in figures["progress_series"]] == ["2024-03-03", "2024-03-04"]
    # 1 day: only the Mar 4 point; no velocity, no forecast, and the target is 2 days away
    one_day = _agent(paced, tenant, "v1", window_days=1)
    assert (one_day["velocity"], one_day["forecast"], one_day["at_risk"]) == (None, None, True)
    assert one_day["progress_series"] == [{"bucket": "2024-03-04", "overall_progress": 60.0}]
    # the whole history, from 0 on Feb 1: slopes from it are 10/29, 20/30, 30/31, 60/32, so
    # the median of all ten pairwise slopes is (10 + 10) / 2 between the sorted 5th and 6th
    everything = _agent(paced, tenant, "v1", window_days=60)
    assert everything["velocity"] == 10.0
    assert everything["progress_series"][0] == {"bucket": "2024-02-01", "overall_progress": 0.0}


def test_series_keeps_the_last_observation_per_bucket(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "s1", one_objective(), meta())
    at = BASE.replace
    # recorded in this order; the 09:00 observation arrives after the 09:30 one
    _record(system, tenant, "s1", (at(hour=8), 5), (at(hour=20), 15))
    _record(system, tenant, "s1", (at(day=2, hour=9, minute=30), 20), (at(day=2, hour=9), 25))
    system.runner.catch_up()

    by_day = _agent(system, tenant, "s1")
    assert by_day["progress_series"] == [
        {"bucket": "2024-03-01", "overall_progress": 15.0},
        {"bucket": "2024-03-02", "overall_progress": 20.0},
    ]
    by_hour = _agent(system, tenant, "s1", bucket="hour")
    assert by_hour["progress_series"] == [
        {"bucket": "2024-03-01T08:00:00+00:00", "overall_progress": 5.0},
        {"bucket": "2024-03-01T20:00:00+00:00", "overall_progress": 15.0},
        {"bucket": "2024-03-02T09:00:00+00:00", "overall_progress": 20.0},
    ]
    # in days from 08:00: (0, 5), (0.5, 15), (25/24, 25), (25.5/24, 20); slopes 20, 19.2,
    # 15/1.0625, 10/(13/24), 5/0.5625, -240: median between 14.12 and 18.46
    assert by_day["velocity"] == pytest.approx((15 / 1.0625 + 10 / (13 / 24)) / 2, abs=1e-4)
    # from the latest observation (20 at Mar 2 09:30): 80 / 16.29 = 4.91 days -> Mar 7
    assert by_day["forecast"]["completion"] == "2024-03-07"


def test_observations_with_another_offset_count_in_utc_and_zoneless_ones_are_refused(
    system: System, tenant: str
) -> None:
    system.goals.set_goals(tenant, "tz", one_objective(), meta())
    plus_two = timezone(timedelta(hours=2))
    with pytest.raises(InvalidCommand) as refused:
        _record(system, tenant, "tz", (datetime(2024, 3, 2, 23), 30))
    assert "observed_at" in refused.value.errors
    # 01:00 at +02:00 on Mar 2 is 23:00 UTC on Mar 1, and is recorded as such
    _record(
        system,
        tenant,
        "tz",
        (datetime(2024, 3, 2, 1, tzinfo=plus_two), 10),
        (datetime(2024, 3, 2, 23, tzinfo=UTC), 30),
    )
    system.runner.catch_up()
    figures = _agent(system, tenant, "tz")
    assert figures["progress_series"] == [
        {"bucket": "2024-03-01", "overall_progress": 10.0},
        {"bucket": "2024-03-02", "overall_progress": 30.0},
    ]
    assert figures["velocity"] == 20.0  # 20 points in exactly one day


def test_no_velocity_without_two_points_nor_with_falling_progress(system: System, tenant: str) -> None:
    for agent in ("none", "single", "falling"):
        system.goals.set_goals(tenant, agent, one_objective(), meta())
    _record(system, tenant, "single", (_day(1), 40))
    _record(system, tenant, "falling", (_day(0), 50), (_day(2), 40))
    system.runner.catch_up()

    none = _agent(system, tenant, "none")
    assert (none["velocity"], none["forecast"], none["at_risk"], none["progress_series"]) == (
        None,
        None,
        False,
        [],
    )
    single = _agent(system, tenant, "single")
    assert (single["velocity"], single["forecast"], single["at_risk"]) == (None, None, False)
    assert single["progress_series"] == [{"bucket": "2024-03-02", "overall_progress": 40.0}]
    falling = _agent(system, tenant, "falling")
    assert (falling["velocity"], falling["forecast"], falling["at_risk"]) == (-5.0, None, False)


def test_finished_goals_forecast_their_actual_completion(system: System, tenant: str) -> None:
    target = dataclasses.replace(one_objective(), target_date="2024-01-01")
    system.goals.set_goals(tenant, "done", target, meta())
    system.goals.set_goals(tenant, "full", target, meta())
    _record(system, tenant, "done", (_day(2), 40), (_day(3), 100))
    _record(system, tenant, "full", (_day(2), 40), (_day(3), 100))
    system.goals.change_status(tenant, "done", "completed", "shipped", meta())
    system.runner.catch_up()

    done = _agent(system, tenant, "done")
    completed_on = datetime.fromisoformat(done["status_since"]).date().isoformat()
    assert done["velocity"] == 60.0
    assert done["forecast"] == {"completion": completed_on, "low": completed_on, "high": completed_on}
    assert done["at_risk"] is False  # finished, even though after its target date

    full = _agent(system, tenant, "full")
    history = system.history.history(tenant, "full", after=0, limit=100, action="milestone_reached").items
    reached = [
        e["timestamp"]
        for e in history
        if e["data"]["objective_id"] == "overall" and e["data"]["threshold"] == 100
    ]
    reached_on = datetime.fromisoformat(reached[0]).date().isoformat()
    assert full["status"] == "active"
    assert full["forecast"] == {"completion": reached_on, "low": reached_on, "high": reached_on}
    assert full["at_risk"] is False


# --- system-wide: a hand-built timeline with recorded timestamps set by hand -----------------

T_NOW = datetime(2024, 6, 12, 12, tzinfo=UTC)  # a Wednesday; its week starts Monday Jun 10


def _at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


@pytest.fixture
def timeline(system: System, tenant: str) -> Iterator[Timeline]:
    """The fleet below, projected; its rows are removed afterwards (they are not in the log)."""
    t = Timeline(tenant)
    t.start("a-fresh", _at(6, 1))
    t.progress("a-fresh", _at(6, 12, 6), 30)  # o1@25 + overall@25 on Jun 12
    t.start("a-stale", _at(6, 1))
    t.progress("a-stale", _at(6, 10), 55)  # 4 milestones on Jun 10; last progress 60 h before now
    t.start("a-edge", _at(6, 1))
    t.progress("a-edge", _at(6, 11, 12), 5)  # exactly 24 h before now
    t.start("a-never", _at(6, 11))  # no progress: created 36 h before now
    t.start("a-paused", _at(1, 1))
    t.progress("a-paused", _at(3, 4, 10), 95)  # 8 milestones on Monday Mar 4
    t.status("a-paused", _at(6, 5), "paused")
    t.start("a-done", _at(1, 1))
    t.progress("a-done", _at(6, 3, 9), 100)  # 10 milestones on Monday Jun 3
    t.status("a-done", _at(6, 4), "completed")
    t.start("a-risk", _at(6, 1), target_date="2024-06-20")
    t.progress("a-risk", _at(6, 8), 10)
    t.progress("a-risk", _at(6, 10), 20)
    t.progress("a-risk", _at(6, 12), 24)
    t.start("a-ontrack", _at(6, 1), target_date="2024-06-20")
    t.progress("a-ontrack", _at(6, 11), 70)  # 4 milestones on Jun 11
    t.progress("a-ontrack", _at(6, 12), 80)  # 2 on Jun 12
    t.start("a-flat", _at(6, 1), target_date="2024-07-01")
    t.progress("a-flat", _at(6, 12), 40)  # 2 on Jun 12
    t.start("a-far", _at(6, 1), target_date="2024-08-01")
    t.progress("a-far", _at(6, 12), 10)
    t.start("a-cancelled", _at(6, 1))
    t.status("a-cancelled", _at(6, 5, 12), "cancelled")
    t.start("a-resumed", _at(6, 1))
    t.status("a-resumed", _at(6, 2), "paused")
    t.status("a-resumed", _at(6, 3), "active")
    t.progress("a-resumed", _at(6, 12, 3), 10)

    base = 10**15 + int(tenant[1:], 16) % 10**6 * 10**4
    page = [(base + i, event) for i, event in enumerate(t.events)]
    with system.store.transaction() as tx:
        GoalProgressProjection().apply(tx, page)
        EventFactsProjection().apply(tx, page)
    yield t
    with system.store.transaction() as tx:
        for table in ("goal_progress", "event_facts", "event_facts_hourly"):
            tx.execute(f"DELETE FROM {table} WHERE tenant = ?", (tenant,))


def _system(system: System, tenant: str, **options: Any) -> dict[str, Any]:
    return system.analytics.system(tenant, **{"now": T_NOW, "extended": True, **options})


def test_distribution_milestones_and_transitions(system: System, tenant: str, timeline: Timeline) -> None:
    figures = _system(system, tenant)
    assert figures["agents_with_goals"] == 12
    assert figures["by_status"] == {"active": 9, "paused": 1, "completed": 1, "cancelled": 1}
    assert figures["milestones_achieved"] == 2 + 4 + 8 + 10 + 6 + 2
    # 0, 0, 5 | 10, 10 | 24 | 30 | 40 | 55 | - | - | 80 | 95, 100
    assert [b["agents"] for b in figures["progress_distribution"]] == [3, 2, 1, 1, 1, 1, 0, 0, 1, 2]
    assert figures["progress_distribution"][0] == {"from": 0, "to": 10, "agents": 3}
    assert figures["progress_distribution"][-1] == {"from": 90, "to": 100, "agents": 2}
    # the last 90 days start on Mar 15, so Mar 4 is left out; Jun 12: 2 + 2 + 2
    assert figures["milestones_per_day"] == [
        {"bucket": "2024-06-03", "count": 10},
        {"bucket": "2024-06-10", "count": 4},
        {"bucket": "2024-06-11", "count": 4},
        {"bucket": "2024-06-12", "count": 6},
    ]
    # the last 26 weeks start on Monday Dec 18, 2023
    assert figures["milestones_per_week"] == [
        {"bucket": "2024-03-04", "count": 8},
        {"bucket": "2024-06-03", "count": 10},
        {"bucket": "2024-06-10", "count": 14},
    ]
    assert figures["status_transitions"] == [
        {"from": "active", "to": "cancelled", "count": 1},
        {"from": "active", "to": "completed", "count": 1},
        {"from": "active", "to": "paused", "count": 2},
        {"from": "paused", "to": "active", "count": 1},
    ]


def test_milestones_are_counted_up_to_now_only(system: System, tenant: str, timeline: Timeline) -> None:
    # seen from Jun 11 noon, Jun 12 is the future and Mar 4 is still more than 90 days back
    figures = _system(system, tenant, now=_at(6, 11, 12))
    assert figures["milestones_per_day"] == [
        {"bucket": "2024-06-03", "count": 10},
        {"bucket": "2024-06-10", "count": 4},
        {"bucket": "2024-06-11", "count": 4},
    ]
    assert figures["milestones_per_week"][-1] == {"bucket": "2024-06-10", "count": 8}
    # seen from Aug 1, Monday Mar 4 is still one of the last 26 weeks but no longer of the last 90 days
    later = _system(system, tenant, now=_at(8, 1))
    assert later["milestones_per_day"][0] == {"bucket": "2024-06-03", "count": 10}
    assert later["milestones_per_week"][0] == {"bucket": "2024-03-04", "count": 8}


def test_stagnant_goals(system: System, tenant: str, timeline: Timeline) -> None:
    figures = _system(system, tenant)
    # longest first; a-edge is exactly 24 h old, not older; paused goals are not stagnant
    assert figures["stagnant"] == [
        {
            "agent_id": "a-stale",
            "overall_progress": 55.0,
            "last_progress_at": "2024-06-10T00:00:00+00:00",
            "hours_since": 60.0,
        },
        {
            "agent_id": "a-never",
            "overall_progress": 0.0,
            "last_progress_at": "2024-06-11T00:00:00+00:00",
            "hours_since": 36.0,
        },
    ]
    assert [s["agent_id"] for s in _system(system, tenant, stagnation_hours=40)["stagnant"]] == ["a-stale"]
    # 12 h: a-edge (24 h) joins; the four goals updated at midnight are exactly 12 h old
    twelve = _system(system, tenant, stagnation_hours=12)["stagnant"]
    assert [(s["agent_id"], s["hours_since"]) for s in twelve] == [
        ("a-stale", 60.0),
        ("a-never", 36.0),
        ("a-edge", 24.0),
    ]


def test_goals_at_risk(system: System, tenant: str, timeline: Timeline) -> None:
    figures = _system(system, tenant)
    # a-risk: (Jun 8, 10), (Jun 10, 20), (Jun 12, 24): slopes 5, 3.5, 2 -> 3.5/day; 76 to go
    #   from Jun 12 00:00 -> 21.7 days -> Jul 3, after Jun 20
    # a-ontrack: 10/day from 80 on Jun 12 -> Jun 14, before Jun 20
    # a-flat: one point, no forecast, target Jul 1 within 30 days -> at risk
    # a-far: one point, no forecast, but Aug 1 is more than 30 days away
    assert figures["at_risk"] == [
        {
            "agent_id": "a-risk",
            "target_date": "2024-06-20",
            "forecast_completion": "2024-07-03",
            "overall_progress": 24.0,
        },
        {
            "agent_id": "a-flat",
            "target_date": "2024-07-01",
            "forecast_completion": None,
            "overall_progress": 40.0,
        },
    ]


def test_agent_figures_agree_with_the_system_figures(system: System, tenant: str, timeline: Timeline) -> None:
    risk = system.analytics.agent(tenant, "a-risk", now=T_NOW)
    assert risk is not None
    assert risk["velocity"] == 3.5
    # quartile slopes 2.75 (rank 0.5) and 4.25 (rank 1.5): 76 / 4.25 = 17.9 days -> Jun 29,
    # 76 / 2.75 = 27.6 days -> Jul 9
    assert risk["forecast"] == {"completion": "2024-07-03", "low": "2024-06-29", "high": "2024-07-09"}
    assert risk["at_risk"] is True
    ontrack = system.analytics.agent(tenant, "a-ontrack", now=T_NOW)
    assert ontrack is not None
    assert (ontrack["velocity"], ontrack["forecast"]["completion"], ontrack["at_risk"]) == (
        10.0,
        "2024-06-14",
        False,
    )
    done = system.analytics.agent(tenant, "a-done", now=T_NOW)
    assert done is not None
    assert done["forecast"] == {"completion": "2024-06-04", "low": "2024-06-04", "high": "2024-06-04"}
    paused = system.analytics.agent(tenant, "a-paused", now=T_NOW)
    assert paused is not None
    assert (paused["velocity"], paused["forecast"], paused["at_risk"], paused["progress_series"]) == (
        None,
        None,
        False,
        [],
    )


def test_empty_tenant(system: System, tenant: str) -> None:
    figures = _system(system, tenant)
    assert figures["progress_distribution"] == [
        {"from": f, "to": f + 10, "agents": 0} for f in range(0, 100, 10)
    ]
    for key in ("milestones_per_day", "milestones_per_week", "status_transitions", "stagnant", "at_risk"):
        assert figures[key] == [], key
