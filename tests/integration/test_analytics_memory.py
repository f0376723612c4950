"""The system analytics remember what they read and fitted between requests: whatever happens
in between (progress, status changes, time passing, a window of another width, a rebuild),
the remembered answer is the one a fresh AnalyticsQueries computes from scratch, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from application.goals import ProgressUpdate
from domain.goals import AgentGoals
from interfaces.bootstrap import System
from projections import analytics_memory, forecasting
from projections.analytics import AnalyticsQueries
from projections.event_facts import EventFactsProjection
from projections.forecasting import MAX_POINTS
from projections.goal_progress import GoalProgressProjection
from tests.integration.support import Fleet, fresh_read_store, meta, one_objective

START = datetime(2024, 6, 1, tzinfo=UTC)


def fresh(system: System, tenant: str, **options: Any) -> dict[str, Any]:
    return AnalyticsQueries(system.store).system(tenant, **options)


def same_answers(remembered: AnalyticsQueries, system: System, tenant: str, **options: Any) -> dict[str, Any]:
    """The remembered answer, checked against a fresh one (asked twice: the second time from memory)."""
    first = remembered.system(tenant, **options)
    assert first == fresh(system, tenant, **options), options
    assert remembered.system(tenant, **options) == first
    return first


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def risk(answer: dict[str, Any], agent: str) -> dict[str, Any] | None:
    return next((r for r in answer["at_risk"] if r["agent_id"] == agent), None)


def test_remembered_answers_follow_the_moving_window(system: System, tenant: str) -> None:
    fleet = Fleet(system.store, tenant)
    for name, target in (
        ("fading", "2024-06-25"),
        ("steady", "2024-07-30"),
        ("idle", "2024-06-20"),
        ("none", None),
    ):
        fleet.start(name, day(0), target)
    # observed at day 1.25, recorded at day 1.5: leaves the 14-day window at day 15.25
    fleet.progress("fading", day(1.5), 10, observed_at=day(1.25))
    fleet.progress("fading", day(10.25), 20)
    for n in range(10):
        fleet.progress("steady", day(n), 9 * n)
    fleet.progress("idle", day(1), 5)
    fleet.progress("none", day(2), 50)
    fleet.start("ahead", day(0), "2024-06-30")
    fleet.progress("ahead", day(12), 10)
    # recorded at day 12.1 but observed at day 12.3: it joins the window when it is observed
    fleet.progress("ahead", day(12.1), 30, observed_at=day(12.3))
    fleet.project()
    remembered = AnalyticsQueries(system.store)

    # within one day (so that nothing but the window changes), a point enters at the end ...
    before = same_answers(remembered, system, tenant, now=day(12.25))
    after = same_answers(remembered, system, tenant, now=day(12.35))
    assert risk(before, "ahead") == {
        "agent_id": "ahead",
        "target_date": "2024-06-30",
        "forecast_completion": None,  # one point: no velocity
        "overall_progress": 30.0,
    }
    assert risk(after, "ahead") is None  # 20 points a 0.3 day: done long before the target
    # ... and one leaves at the start
    before = same_answers(remembered, system, tenant, now=day(15.2))
    after = same_answers(remembered, system, tenant, now=day(15.3))
    assert before["at_risk"] != after["at_risk"]
    assert (risk(before, "fading") or {}).get("forecast_completion") is not None
    assert risk(after, "fading") == {
        "agent_id": "fading",
        "target_date": "2024-06-25",
        "forecast_completion": None,
        "overall_progress": 20.0,
    }
    # days pass; back in time; windows of other widths
    for now in (day(16), day(20), day(40)):
        same_answers(remembered, system, tenant, now=now)
    for now, days in ((day(12), 14), (day(12), 3), (day(16), 30), (day(16), 14)):
        same_answers(remembered, system, tenant, now=now, window_days=days)


def test_remembered_answers_follow_new_facts(system: System, tenant: str) -> None:
    fleet = Fleet(system.store, tenant)
    for name, target in (("risky", "2024-06-25"), ("steady", "2024-07-30"), ("none", None)):
        fleet.start(name, day(0), target)
    for n in range(10):
        fleet.progress("risky", day(n), 2 * n)
        fleet.progress("steady", day(n), 9 * n)
    fleet.project()
    remembered = AnalyticsQueries(system.store)
    same_answers(remembered, system, tenant, now=day(10.5))

    # progress observed before later observations, a pause, a new agent, a goal reaching 100
    fleet.progress("risky", day(10), 40, observed_at=day(8.5))
    fleet.status("steady", day(10.1), "paused")
    fleet.start("late", day(10.2), "2024-06-30")
    fleet.progress("late", day(10.2), 10)
    fleet.progress("late", day(10.3), 30)
    fleet.progress("none", day(10.4), 100)
    fleet.project()
    answer = same_answers(remembered, system, tenant, now=day(10.5))
    assert "steady" not in {s["agent_id"] for s in answer["stagnant"]}  # paused, not stagnant
    assert answer["status_transitions"] == [{"from": "active", "to": "paused", "count": 1}]
    # o1 and overall: risky at 25, steady at 25, 50 and 75, none at 25 .. 100, late at 25
    assert sum(b["count"] for b in answer["milestones_per_day"]) == 2 + 6 + 10 + 2

    fleet.status("steady", day(10.6), "active")
    fleet.project()
    for hours in (1, 2, 48):
        same_answers(remembered, system, tenant, now=day(10.6) + timedelta(hours=hours))


def test_a_window_sliding_past_points_a_fit_leaves_out_fits_nothing_again(
    system: System, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = Fleet(system.store, tenant)
    fleet.start("busy", day(0), "2024-06-20")  # more points in the window than a fit takes
    fleet.start("quiet", day(0), "2024-06-20")
    for n in range(MAX_POINTS + 30):
        fleet.progress("busy", day(n / 100), n / 20)
    for n in range(10):
        fleet.progress("quiet", day(n / 2), 2 * n)
    fleet.project()
    fits: list[int] = []
    fit = forecasting.fit_per_day
    monkeypatch.setattr(forecasting, "fit_per_day", lambda points: fits.append(len(points)) or fit(points))
    remembered = AnalyticsQueries(system.store)
    same_answers(remembered, system, tenant, now=day(5.3))  # the 14-day window holds every point
    fits.clear()
    # the window starts at day 0.195: 20 of busy's oldest points and 1 of quiet's leave it
    answer = same_answers(remembered, system, tenant, now=day(14.195))
    assert sorted(fits) == [9, 9, MAX_POINTS]  # quiet again, busy only by the fresh one
    fits.clear()
    remembered.system(tenant, now=day(14.245))  # 5 more of busy's leave
    assert fits == []
    assert risk(answer, "quiet") is not None and risk(answer, "busy") is not None


def test_a_tenant_far_behind_a_busy_store_reads_its_own_facts_again_instead_of_everyones(
    system: System, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, busy = Fleet(system.store, tenant), Fleet(system.store, f"{tenant}-busy")
    mine.start("a", day(0), "2024-06-12")
    for n in range(4):
        mine.progress("a", day(n), 5 * n)
    busy.start("b", day(0))
    mine.project()
    busy.project()
    monkeypatch.setattr(analytics_memory, "FOLLOW_AT_MOST", 10)
    followed: list[int] = []
    follow = analytics_memory.ProgressWindow._follow

    def counted(window: analytics_memory.ProgressWindow, tx: Any) -> None:
        followed.append(window.position)
        follow(window, tx)

    monkeypatch.setattr(analytics_memory.ProgressWindow, "_follow", counted)
    remembered = AnalyticsQueries(system.store)
    same_answers(remembered, system, tenant, now=day(4))
    # a few facts of the other tenant, and one of ours: followed
    for n in range(3):
        busy.progress("b", day(4 + n / 10), n)
    busy.project()
    mine.progress("a", day(4.5), 25)
    mine.project()
    followed.clear()
    answer = same_answers(remembered, system, tenant, now=day(5))
    assert len(followed) == 1
    # more of the other tenant's facts than FOLLOW_AT_MOST (and than 4 per point of ours), and
    # a status change of ours among them: read again, not followed
    for n in range(30):
        busy.progress("b", day(5 + n / 100), 10 + n)
    busy.project()
    mine.progress("a", day(5.5), 30)
    mine.status("a", day(5.6), "paused")
    mine.project()
    followed.clear()
    after = same_answers(remembered, system, tenant, now=day(6))
    assert followed == []
    assert after["status_transitions"] == [{"from": "active", "to": "paused", "count": 1}]
    assert after["progress_updates"] == answer["progress_updates"] + 1


def test_a_progress_recorded_before_it_is_observed_counts_from_its_recording(
    system: System, tenant: str
) -> None:
    fleet = Fleet(system.store, tenant)
    fleet.start("ahead", day(0), "2024-06-20")
    fleet.progress("ahead", day(1), 10)
    fleet.progress("ahead", day(2.5), 20, observed_at=day(3.5))  # a reporter's clock a day ahead
    fleet.progress("ahead", day(4), 30)
    fleet.project()
    remembered = AnalyticsQueries(system.store)
    # from day 16.4 the window starts at day 2.4: the three points but the first are in it,
    # 10 points a day (0.5 day apart), so the goal reaches 100 long before its target
    assert risk(same_answers(remembered, system, tenant, now=day(16.4)), "ahead") is None
    # from day 16.6 the second point, recorded at day 2.5, is out although observed in the window
    assert risk(same_answers(remembered, system, tenant, now=day(16.6)), "ahead") == {
        "agent_id": "ahead",
        "target_date": "2024-06-20",
        "forecast_completion": None,
        "overall_progress": 30.0,
    }
    for n in (4, 15, 17, 18.5):
        same_answers(remembered, system, tenant, now=day(n))


def test_remembered_answers_survive_a_rebuild_and_see_what_follows(system: System, tenant: str) -> None:
    goals = system.goals
    observed = datetime.now(UTC) - timedelta(days=3)
    for agent in ("r1", "r2"):
        goals.set_goals(tenant, agent, dataclasses.replace(one_objective(), target_date="2030-01-01"), meta())
        for n, value in enumerate((10, 20, 30)):
            goals.record_progress(
                tenant, ProgressUpdate(agent, {"o1": value}, observed_at=observed + timedelta(days=n)), meta()
            )
    goals.change_status(tenant, "r2", "paused", "hold", meta())
    system.runner.catch_up()
    remembered = AnalyticsQueries(system.store)
    same_answers(remembered, system, tenant)

    system.rebuilder.rebuild(system.rebuilder.names, restart=True)
    same_answers(remembered, system, tenant)

    goals.record_progress(tenant, ProgressUpdate("r1", {"o1": 35}), meta())
    goals.change_status(tenant, "r2", "active", "back", meta())
    system.runner.catch_up()
    answer = same_answers(remembered, system, tenant)
    assert {"from": "paused", "to": "active", "count": 1} in answer["status_transitions"]


def test_a_new_day_brings_a_target_date_within_the_risk_horizon(system: System, tenant: str) -> None:
    fleet = Fleet(system.store, tenant)
    fleet.start("far", day(0), "2024-07-16")
    fleet.progress("far", day(0.5), 10)  # out of both windows below: no velocity
    fleet.project()
    remembered = AnalyticsQueries(system.store)
    # on June 15 the target is 31 days away, on June 16 30 (and no point moved in between)
    assert same_answers(remembered, system, tenant, now=day(14.9))["at_risk"] == []
    assert [r["agent_id"] for r in same_answers(remembered, system, tenant, now=day(15.1))["at_risk"]] == [
        "far"
    ]


def test_facts_that_went_back_are_read_again(system: System, tenant: str, tmp_path: Path) -> None:
    with fresh_read_store(system.settings, tmp_path) as store:
        projections = (GoalProgressProjection(), EventFactsProjection())
        with store.transaction() as tx:
            for projection in projections:
                projection.create_tables(tx)

        def project(events: list[AgentGoals.Event]) -> None:
            with store.transaction() as tx:
                for table in ("goal_progress", "event_facts", "event_facts_hourly"):
                    tx.execute(f"DELETE FROM {table}")
                for projection in projections:
                    projection.apply(tx, [(i + 1, e) for i, e in enumerate(events)])

        fleet = Fleet(system.store, tenant)
        fleet.start("a1", day(0), "2024-06-20")
        for n in range(5):
            fleet.progress("a1", day(n), 10 * n)
        project(fleet.events)
        remembered = AnalyticsQueries(store)
        assert risk(remembered.system(tenant, now=day(5)), "a1") is None  # 10 a day: done by June 15

        # the read models are replaced by those of a shorter history (a reset, another log)
        slow = Fleet(system.store, tenant)
        slow.start("a1", day(0), "2024-06-20")
        slow.progress("a1", day(1), 1)
        slow.progress("a1", day(4), 2)
        project(slow.events)
        answer = remembered.system(tenant, now=day(5))
        assert answer == AnalyticsQueries(store).system(tenant, now=day(5))
        assert risk(answer, "a1") is not None
