"""Analytics over the goal_progress read model: system-wide and per agent."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from typing import Any

from application.ports import ReadStore
from domain.status import Status


class AnalyticsQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def system(self, tenant: str) -> dict[str, Any]:
        """Agents with goals, counts by status, mean/median progress, milestones achieved."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT status, overall_progress, milestones, updates FROM goal_progress WHERE tenant = ?",
                (tenant,),
            )
        progress = [float(r[1]) for r in rows]
        by_status = {s.value: 0 for s in Status}
        for row in rows:
            by_status[row[0]] = by_status.get(row[0], 0) + 1
        return {
            "agents_with_goals": len(rows),
            "by_status": by_status,
            "mean_progress": round(statistics.fmean(progress), 2) if progress else None,
            "median_progress": round(statistics.median(progress), 2) if progress else None,
            "milestones_achieved": sum(int(r[2]) for r in rows),
            "progress_updates": sum(int(r[3]) for r in rows),
        }

    def agent(self, tenant: str, agent_id: str, *, now: datetime | None = None) -> dict[str, Any] | None:
        """Progress per objective, milestones, update count and time spent in each status."""
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT view, updates, status_since, status_durations FROM goal_progress"
                " WHERE tenant = ? AND agent_id = ?",
                (tenant, agent_id),
            )
        if row is None:
            return None
        view = json.loads(row[0])
        durations: dict[str, float] = json.loads(row[3])
        current = view["status"]
        since = datetime.fromisoformat(row[2])
        spent_now = max(0.0, ((now or datetime.now(UTC)) - since).total_seconds())
        durations[current] = durations.get(current, 0.0) + spent_now
        objectives = (view["goals"] or {}).get("primary_objectives", [])
        progress = view["progress"]
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
        }
