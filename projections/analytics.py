"""Analytics over the goal_progress and event_facts read models: system-wide and per agent."""

from __future__ import annotations

import json
import statistics
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, NamedTuple

from application.ports import ReadStore, Row
from domain.limits import OVERALL
from domain.status import Status
from projections import forecasting
from projections.analytics_memory import AnalyticsMemory, GoalNote, ProgressWindow
from projections.event_facts_queries import EventFactsQueries
from projections.forecasting import Forecast, SlopeFit
from projections.instants import instant, stored_instant, utc

Bucket = Literal["hour", "day"]

DEFAULT_WINDOW_DAYS = 14
DEFAULT_STAGNATION_HOURS = 24.0
RISK_HORIZON_DAYS = 30
MILESTONE_DAYS = 90
MILESTONE_WEEKS = 26
DONE = 100.0

# (observed_at, overall_progress, position) of one ProgressRecorded fact.
Point = tuple[datetime, float, int]


class ActiveGoal(NamedTuple):
    """What stagnation and risk need of one active goal."""

    agent_id: str
    overall: float
    note: GoalNote


class AnalyticsQueries:
    def __init__(self, store: ReadStore, memory: AnalyticsMemory | None = None) -> None:
        self._store = store
        self._events = EventFactsQueries(store)
        self._memory = memory or AnalyticsMemory()

    @property
    def remembered(self) -> list[str]:
        """The tenants whose system analytics are remembered, the one asked longest ago first."""
        return self._memory.tenants()

    def forget(self, tenant: str) -> None:
        """Drop what is remembered of the tenant's analytics (it was erased)."""
        self._memory.forget(tenant)

    def system(
        self,
        tenant: str,
        *,
        now: datetime | None = None,
        extended: bool = True,
        stagnation_hours: float = DEFAULT_STAGNATION_HOURS,
        window_days: int = DEFAULT_WINDOW_DAYS,
    ) -> dict[str, Any]:
        """Agents with goals, counts by status, mean/median progress, milestones achieved.

        With `extended` (the default; what the HTTP API serves), also:
        - `progress_distribution`: agents per 10-point bin of overall progress, [0,10) ..
          [90,100] (100 falls in the last bin), every bin listed;
        - `milestones_per_day` / `milestones_per_week`: milestones reached by the UTC day /
          week (starting Monday) they were recorded, over the last 90 days / 26 weeks ending
          with the day of `now` (whole days), oldest first, only buckets with milestones;
        - `status_transitions`: status changes counted per (from, to);
        - `stagnant`: active goals whose last progress (or creation, without progress) is more
          than `stagnation_hours` before `now`, longest-stagnant first;
        - `at_risk`: active goals with a target date that `forecasting.at_risk` flags, with
          velocities fitted over the last `window_days` (see `agent`), by target date.

        Read from goal_progress (the goals, their status and progress) and event_facts (the
        milestones, transitions and progress points). What a request learns of the goal
        views, the progress points and the fits is remembered (see `analytics_memory`), so the
        next request reads and fits again only what changed in between.
        """
        at = _utc(now)
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT agent_id, status, overall_progress, milestones, updates, position"
                " FROM goal_progress WHERE tenant = ?",
                (tenant,),
            )
            if not extended:
                return _figures(rows)
            since = at - timedelta(days=window_days)
            memory = self._memory.of(tenant)
            with memory.lock:
                notes = memory.notes.refresh(tx, tenant, rows)
                window = memory.window
                window.refresh(tx, since)
                rows_seen = memory.notes.generation  # changes if and only if the rows did
                figures = memory.recall("figures", rows_seen, lambda: _figures(rows))
                distribution = memory.recall(
                    "distribution", rows_seen, lambda: _distribution(r[2] for r in rows)
                )
                per_day, per_week = memory.recall(
                    "milestones", (at.date(), window.seen), lambda: self._milestones(tenant, at.date())
                )
                status = Status.ACTIVE.value
                active = [
                    ActiveGoal(r[0], float(r[2]), notes[r[0]])
                    for r in rows
                    if r[1] == status and r[0] in notes
                ]
                at_risk = memory.remembered_at_risk(at.date(), since, at)
                if at_risk is None:
                    at_risk = _at_risk(window, active, since, at)
                    memory.remember_at_risk(at.date(), since, at, at_risk)
                return {
                    **figures,
                    "by_status": dict(figures["by_status"]),
                    "progress_distribution": [dict(b) for b in distribution],
                    "milestones_per_day": [dict(b) for b in per_day],
                    "milestones_per_week": [dict(b) for b in per_week],
                    "status_transitions": _transitions(window.transitions),
                    "stagnant": _stagnant(active, at, stagnation_hours),
                    "at_risk": at_risk,
                }

    def busiest_tenants(self, limit: int) -> list[str]:
        """The tenants with the most goals, at most `limit` and no more than the memory holds,
        busiest first."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT tenant FROM goal_progress GROUP BY tenant ORDER BY COUNT(*) DESC, tenant LIMIT ?",
                (min(limit, self._memory.capacity),),
            )
        return [str(r[0]) for r in rows]

    def warm(
        self,
        tenants: Sequence[str],
        *,
        now: datetime | None = None,
        stagnation_hours: float = DEFAULT_STAGNATION_HOURS,
        stop: threading.Event | None = None,
    ) -> None:
        """Compute the system analytics of `tenants` once, for what that leaves remembered: the
        first request then reads and fits only what changed since. The first tenant is warmed
        last, so that it is the last the memory would let go of. Once `stop` is set, no
        further tenant is started."""
        for tenant in reversed(tenants):
            if stop is not None and stop.is_set():
                return
            self.system(tenant, now=now, stagnation_hours=stagnation_hours)

    def _milestones(self, tenant: str, today: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Milestones recorded per UTC day (last 90 days) and per week from Monday (last 26 weeks)."""
        first_day = today - timedelta(days=MILESTONE_DAYS - 1)
        first_week = today - timedelta(days=today.weekday(), weeks=MILESTONE_WEEKS - 1)
        buckets = self._events.buckets(
            tenant,
            type="MilestoneReached",
            start=datetime.combine(min(first_day, first_week), time(), UTC),
            end=datetime.combine(today + timedelta(days=1), time(), UTC),
            bucket="day",
        )
        days = [(date.fromisoformat(b["bucket"][:10]), int(b["count"])) for b in buckets]
        weeks: Counter[date] = Counter()
        for day, count in days:
            if day >= first_week:
                weeks[day - timedelta(days=day.weekday())] += count
        return (
            [{"bucket": d.isoformat(), "count": n} for d, n in days if d >= first_day],
            [{"bucket": w.isoformat(), "count": n} for w, n in sorted(weeks.items())],
        )

    def agent(
        self,
        tenant: str,
        agent_id: str,
        *,
        now: datetime | None = None,
        window_days: int = DEFAULT_WINDOW_DAYS,
        bucket: Bucket = "day",
    ) -> dict[str, Any] | None:
        """Progress per objective, milestones, update count and time spent in each status, and:

        - `velocity`: points of overall progress per day, the Theil-Sen slope (median of the
          pairwise slopes; at most the last `forecasting.MAX_POINTS` points, and a fixed-seed
          sample of `forecasting.MAX_PAIRS` pairs when they make more pairs than that) of the
          (observed_at, overall_progress) points of progress updates observed in the
          `window_days` before `now`; None with fewer than two points;
        - `forecast`: {"completion", "low", "high"} UTC dates when overall progress reaches 100,
          from the latest point at the fitted velocity; the band uses the 25th/75th percentile
          pairwise slopes (`low`, the earliest date, at the 75th; `high`, the latest, at the
          25th, None when that slope is not positive). A completed goal (or one at 100) gives its
          actual completion: the day it was marked completed (or reached 100) for all three.
          None when velocity is None or not positive, and for cancelled goals;
        - `at_risk`: see `forecasting.at_risk` (30-day horizon); never for completed or
          cancelled goals;
        - `progress_series`: the last overall progress (by observed_at) per UTC `bucket` (hour
          or day) in the same window, oldest first.
        """
        at = _utc(now)
        since = at - timedelta(days=window_days)
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT view, updates, status_since, status_durations FROM goal_progress"
                " WHERE tenant = ? AND agent_id = ?",
                (tenant, agent_id),
            )
            if row is None:
                return None
            facts = tx.fetchall(
                "SELECT agent_id, position, observed_at, overall FROM event_facts WHERE tenant = ?"
                " AND agent_id = ? AND type = 'ProgressRecorded' AND at >= ? ORDER BY position",
                (tenant, agent_id, stored_instant(tx.dialect == "postgres", since)),
            )
        points = _points(facts, since, at).get(agent_id, [])
        view = json.loads(row[0])
        durations: dict[str, float] = json.loads(row[3])
        current = view["status"]
        status_since = datetime.fromisoformat(row[2])
        spent_now = max(0.0, (at - status_since).total_seconds())
        durations[current] = durations.get(current, 0.0) + spent_now
        objectives = (view["goals"] or {}).get("primary_objectives", [])
        progress = view["progress"]
        velocity, outlook, risky = _outlook(view, status_since, points, at.date())
        return {
            "agent_id": agent_id,
            "status": current,
            "status_since": row[2],
            "overall_progress": progress["overall_progress"],
            "objectives": [
                {
                    "id": o["id"],
                    "title": o["title"],
                    "weight": o["weight"],
                    "progress": progress["objective_progress"].get(o["id"], 0.0),
                    "milestones_achieved": sorted(
                        m["threshold"]
                        for m in progress["milestones_achieved"]
                        if m["objective_id"] == o["id"] and m["goal_version"] == view["goal_version"]
                    ),
                }
                for o in objectives
            ],
            "milestones": progress["milestones_achieved"],
            "milestones_achieved": len(progress["milestones_achieved"]),
            "updates": int(row[1]),
            "last_updated": progress["last_updated"],
            "time_in_status_s": {k: round(v, 3) for k, v in durations.items()},
            "goal_version": view["goal_version"],
            "velocity": velocity,
            "forecast": outlook.as_json() if outlook else None,
            "at_risk": risky,
            "progress_series": _series(points, bucket),
        }


def _utc(moment: datetime | None) -> datetime:
    """`moment` (now when None) as an aware UTC instant; a zoneless one is taken as UTC."""
    return utc(moment or datetime.now(UTC))


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10]) if len(text) == 10 else instant(text).date()
    except ValueError:
        return None


def _figures(rows: Sequence[Row]) -> dict[str, Any]:
    """The figures of goal_progress rows (agent_id, status, overall_progress, milestones, updates, ...)."""
    progress = [float(r[2]) for r in rows]
    by_status = {s.value: 0 for s in Status}
    for row in rows:
        by_status[row[1]] = by_status.get(row[1], 0) + 1
    return {
        "agents_with_goals": len(rows),
        "by_status": by_status,
        "mean_progress": round(statistics.fmean(progress), 2) if progress else None,
        "median_progress": round(statistics.median(progress), 2) if progress else None,
        "milestones_achieved": sum(int(r[3]) for r in rows),
        "progress_updates": sum(int(r[4]) for r in rows),
    }


_EDGES = tuple(range(10, 100, 10))


def _distribution(progress: Iterable[float]) -> list[dict[str, int]]:
    # bin i holds [10i, 10i + 10); the last one [90, 100]
    counts = Counter(bisect_right(_EDGES, p) for p in progress)
    return [{"from": 10 * i, "to": 10 * (i + 1), "agents": counts.get(i, 0)} for i in range(10)]


def _transitions(counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"from": f, "to": t, "count": n} for (f, t), n in sorted(counts.items()) if n]


def _stagnant(active: Iterable[ActiveGoal], now: datetime, hours: float) -> list[dict[str, Any]]:
    found = []
    for goal in active:
        last = goal.note.last_active
        since = (now - last).total_seconds() / 3600
        if since > hours:
            found.append(
                {
                    "agent_id": goal.agent_id,
                    "overall_progress": goal.overall,
                    "last_progress_at": goal.note.last_active_iso,
                    "hours_since": round(since, 2),
                }
            )
    return sorted(found, key=lambda s: (-s["hours_since"], s["agent_id"]))


def _at_risk(
    window: ProgressWindow, active: Iterable[ActiveGoal], since: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Active goals at risk (`_risky`), from the fits the window remembers: a goal at 100 is
    never at risk, so only the others are fitted."""
    found, today = [], now.date()
    for goal in active:
        target_date = goal.note.target_date
        if not target_date or goal.overall >= DONE:
            continue
        velocity = window.velocity(goal.agent_id, since, now, DONE)
        if _risky(velocity.fit, velocity.forecast, target_date, goal.overall, today):
            found.append(
                {
                    "agent_id": goal.agent_id,
                    "target_date": target_date,
                    "forecast_completion": velocity.completion,
                    "overall_progress": goal.overall,
                }
            )
    return sorted(found, key=lambda r: (r["target_date"], r["agent_id"]))


def _points(rows: Iterable[tuple[Any, ...]], since: datetime, now: datetime) -> dict[str, list[Point]]:
    """Progress points per agent observed in [since, now], oldest observation first.

    `rows` are (agent_id, position, observed_at, overall) of ProgressRecorded facts recorded
    since `since`: an observation is never recorded before it is observed, so no fact
    observed in the window is left out.
    """
    found: dict[str, list[Point]] = {}
    for agent_id, position, observed_at, overall in rows:
        observed = instant(observed_at)
        if since <= observed <= now:
            found.setdefault(agent_id, []).append((observed, float(overall), int(position)))
    for points in found.values():
        points.sort(key=lambda p: (p[0], p[2]))
    return found


def _outlook(
    view: dict[str, Any], status_since: datetime, points: list[Point], today: date
) -> tuple[float | None, Forecast | None, bool]:
    """Velocity, forecast and risk of one goal from its view and its points in the window."""
    fit = forecasting.fit_per_day([(at, value) for at, value, _ in points])
    velocity = round(fit.slope, 4) if fit else None
    status = view["status"]
    done = _done_on(view, status_since)
    outlook: Forecast | None
    if done is not None:
        outlook = Forecast(done, done, done)
    elif status == Status.CANCELLED.value or fit is None or not points:
        outlook = None
    else:
        last_at, last_value, _ = points[-1]
        outlook = forecasting.forecast(last_at, last_value, fit, DONE)
    risky = status in (Status.ACTIVE.value, Status.PAUSED.value) and _risky(
        fit, outlook, view["target_date"], float(view["progress"]["overall_progress"]), today
    )
    return velocity, outlook, risky


def _risky(
    fit: SlopeFit | None, outlook: Forecast | None, target_date: str | None, value: float, today: date
) -> bool:
    """The at-risk rule, for the system figures and an agent's alike."""
    return forecasting.at_risk(
        completion=outlook.completion if outlook else None,
        target_date=_day(target_date),
        slope=fit.slope if fit else None,
        value=value,
        today=today,
        horizon_days=RISK_HORIZON_DAYS,
        target=DONE,
    )


def _done_on(view: dict[str, Any], status_since: datetime) -> date | None:
    """The day a finished goal finished: when it was marked completed, else when its overall
    progress reached 100 (its overall@100 milestone, else its last progress); else None."""
    if view["status"] == Status.COMPLETED.value:
        return status_since.astimezone(UTC).date()
    progress = view["progress"]
    if view["status"] == Status.CANCELLED.value or float(progress["overall_progress"]) < DONE:
        return None
    reached = [
        m["reached_at"]
        for m in progress["milestones_achieved"]
        if m["objective_id"] == OVERALL
        and m["threshold"] >= DONE
        and m["goal_version"] == view["goal_version"]
    ]
    return _day(max(reached) if reached else progress["last_updated"])


def _series(points: list[Point], bucket: Bucket) -> list[dict[str, Any]]:
    last: dict[str, float] = {}
    for at, value, _ in points:
        key = (
            at.date().isoformat()
            if bucket == "day"
            else at.replace(minute=0, second=0, microsecond=0).isoformat()
        )
        last[key] = value
    return [{"bucket": k, "overall_progress": v} for k, v in sorted(last.items())]
