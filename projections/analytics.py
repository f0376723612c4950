"""Analytics over the goal_progress and goal_history read models: system-wide and per agent."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from application.ports import ReadStore, Tx
from domain.objectives import OVERALL
from domain.status import Status
from projections import forecasting
from projections.forecasting import Forecast

Bucket = Literal["hour", "day"]

DEFAULT_WINDOW_DAYS = 14
DEFAULT_STAGNATION_HOURS = 24.0
RISK_HORIZON_DAYS = 30
MILESTONE_DAYS = 90
MILESTONE_WEEKS = 26
DONE = 100.0

_BINS = " ".join(f"WHEN overall_progress < {edge} THEN {i}" for i, edge in enumerate(range(10, 100, 10)))
_BIN = f"CASE {_BINS} ELSE 9 END"

# (observed_at, overall_progress, position) of one progress_updated history row.
Point = tuple[datetime, float, int]
# (agent_id, overall_progress, created_at, view) of one active goal.
Active = tuple[str, float, str, dict[str, Any]]


class AnalyticsQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

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
        - `milestones_per_day` / `milestones_per_week`: milestone_reached history rows by the
          UTC day / week (starting Monday) they were recorded, over the last 90 days / 26 weeks
          ending with the day of `now` (whole days), oldest first, only buckets with milestones;
        - `status_transitions`: status_changed history rows counted per (from, to);
        - `stagnant`: active goals whose last progress (or creation, without progress) is more
          than `stagnation_hours` before `now`, longest-stagnant first;
        - `at_risk`: active goals with a target date that `forecasting.at_risk` flags, with
          velocities fitted over the last `window_days` (see `agent`), by target date.
        """
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT status, overall_progress, milestones, updates FROM goal_progress WHERE tenant = ?",
                (tenant,),
            )
            progress = [float(r[1]) for r in rows]
            by_status = {s.value: 0 for s in Status}
            for row in rows:
                by_status[row[0]] = by_status.get(row[0], 0) + 1
            figures: dict[str, Any] = {
                "agents_with_goals": len(rows),
                "by_status": by_status,
                "mean_progress": round(statistics.fmean(progress), 2) if progress else None,
                "median_progress": round(statistics.median(progress), 2) if progress else None,
                "milestones_achieved": sum(int(r[2]) for r in rows),
                "progress_updates": sum(int(r[3]) for r in rows),
            }
            if not extended:
                return figures
            at = _utc(now)
            per_day, per_week = _milestones(tx, tenant, at.date())
            active = [
                (r[0], float(r[1]), r[2], json.loads(r[3]))
                for r in tx.fetchall(
                    "SELECT agent_id, overall_progress, created_at, view FROM goal_progress"
                    " WHERE tenant = ? AND status = ? ORDER BY agent_id",
                    (tenant, Status.ACTIVE.value),
                )
            ]
            figures.update(
                progress_distribution=_distribution(tx, tenant),
                milestones_per_day=per_day,
                milestones_per_week=per_week,
                status_transitions=_transitions(tx, tenant),
                stagnant=_stagnant(active, at, stagnation_hours),
                at_risk=_at_risk(tx, tenant, active, at, window_days),
            )
        return figures

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
          pairwise slopes; at most the last 500 points, and a fixed-seed sample of 50,000 pairs
          beyond that) of the (observed_at, overall_progress) points of progress updates
          observed in the `window_days` before `now`; None with fewer than two points;
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
            history = tx.fetchall(
                "SELECT agent_id, position, data FROM goal_history WHERE tenant = ? AND agent_id = ?"
                " AND action = 'progress_updated' AND timestamp >= ? ORDER BY position",
                (tenant, agent_id, since.isoformat()),
            )
        points = _points(history, since, at).get(agent_id, [])
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
    moment = moment or datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _instant(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10]) if len(text) == 10 else _instant(text).date()
    except ValueError:
        return None


def _distribution(tx: Tx, tenant: str) -> list[dict[str, int]]:
    counts = {
        int(r[0]): int(r[1])
        for r in tx.fetchall(
            f"SELECT {_BIN}, COUNT(*) FROM goal_progress WHERE tenant = ? GROUP BY {_BIN}", (tenant,)
        )
    }
    return [{"from": 10 * i, "to": 10 * (i + 1), "agents": counts.get(i, 0)} for i in range(10)]


def _milestones(tx: Tx, tenant: str, today: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Milestones recorded per UTC day (last 90 days) and per week from Monday (last 26 weeks)."""
    first_day = today - timedelta(days=MILESTONE_DAYS - 1)
    first_week = today - timedelta(days=today.weekday(), weeks=MILESTONE_WEEKS - 1)
    rows = tx.fetchall(
        "SELECT SUBSTR(timestamp, 1, 10), COUNT(*) FROM goal_history"
        " WHERE tenant = ? AND action = 'milestone_reached' AND timestamp >= ? AND timestamp < ?"
        " GROUP BY SUBSTR(timestamp, 1, 10)",
        (tenant, min(first_day, first_week).isoformat(), (today + timedelta(days=1)).isoformat()),
    )
    days = sorted((date.fromisoformat(r[0]), int(r[1])) for r in rows)
    weeks: Counter[date] = Counter()
    for day, count in days:
        if day >= first_week:
            weeks[day - timedelta(days=day.weekday())] += count
    return (
        [{"bucket": d.isoformat(), "count": n} for d, n in days if d >= first_day],
        [{"bucket": w.isoformat(), "count": n} for w, n in sorted(weeks.items())],
    )


def _transitions(tx: Tx, tenant: str) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT data FROM goal_history WHERE tenant = ? AND action = 'status_changed'", (tenant,)
    )
    counts = Counter((d["from"], d["to"]) for d in (json.loads(r[0]) for r in rows))
    return [{"from": f, "to": t, "count": n} for (f, t), n in sorted(counts.items())]


def _stagnant(active: Iterable[Active], now: datetime, hours: float) -> list[dict[str, Any]]:
    found = []
    for agent_id, overall, created_at, view in active:
        last = _instant(view["progress"]["last_updated"] or created_at)
        since = (now - last).total_seconds() / 3600
        if since > hours:
            found.append(
                {
                    "agent_id": agent_id,
                    "overall_progress": overall,
                    "last_progress_at": last.isoformat(),
                    "hours_since": round(since, 2),
                }
            )
    return sorted(found, key=lambda s: (-s["hours_since"], s["agent_id"]))


def _at_risk(
    tx: Tx, tenant: str, active: Iterable[Active], now: datetime, window_days: int
) -> list[dict[str, Any]]:
    since = now - timedelta(days=window_days)
    history = tx.fetchall(
        "SELECT h.agent_id, h.position, h.data FROM goal_history h"
        " JOIN goal_progress g ON g.tenant = h.tenant AND g.agent_id = h.agent_id"
        " WHERE h.tenant = ? AND g.status = ? AND h.action = 'progress_updated' AND h.timestamp >= ?"
        " ORDER BY h.position",
        (tenant, Status.ACTIVE.value, since.isoformat()),
    )
    points = _points(history, since, now)
    found = []
    for agent_id, overall, _, view in active:
        if not view["target_date"]:
            continue
        # status_since only matters to completed goals, and these are active
        _, outlook, risky = _outlook(view, now, points.get(agent_id, []), now.date())
        if risky:
            found.append(
                {
                    "agent_id": agent_id,
                    "target_date": view["target_date"],
                    "forecast_completion": outlook.as_json()["completion"] if outlook else None,
                    "overall_progress": overall,
                }
            )
    return sorted(found, key=lambda r: (r["target_date"], r["agent_id"]))


def _points(rows: Iterable[tuple[Any, ...]], since: datetime, now: datetime) -> dict[str, list[Point]]:
    """Progress points per agent observed in [since, now], oldest observation first.

    The SQL keeps history rows recorded since `since`: an observation is never recorded
    before it is observed, so no row observed in the window is left out.
    """
    found: dict[str, list[Point]] = {}
    for agent_id, position, raw in rows:
        data = json.loads(raw)
        observed = _instant(data["observed_at"])
        if since <= observed <= now:
            found.setdefault(agent_id, []).append((observed, float(data["overall_progress"]), int(position)))
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
    risky = status in (Status.ACTIVE.value, Status.PAUSED.value) and forecasting.at_risk(
        completion=outlook.completion if outlook else None,
        target_date=_day(view["target_date"]),
        slope=fit.slope if fit else None,
        value=float(view["progress"]["overall_progress"]),
        today=today,
        horizon_days=RISK_HORIZON_DAYS,
        target=DONE,
    )
    return velocity, outlook, risky


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
