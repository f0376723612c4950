"""The tenant's alerts, from the read models that know them: stagnant and at-risk goals from
the analytics, failing collections from the collector's read model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interfaces.bootstrap import System


def system_alerts(system: System, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """Each alert is {agent_id, since, detail}: since when it holds (ISO 8601), and what else
    is known of it. An at-risk goal's `since` is its last progress: the forecast that puts it
    at risk is what that progress left."""
    figures = system.analytics.system(tenant, stagnation_hours=system.settings.stagnation_hours)
    stagnant = [
        {
            "agent_id": item["agent_id"],
            "since": item["last_progress_at"],
            "detail": {"hours_since": item["hours_since"], "overall_progress": item["overall_progress"]},
        }
        for item in figures["stagnant"]
    ]
    failing = [
        {"agent_id": item["agent_id"], "since": item["since"], "detail": {"reason": item["reason"]}}
        for item in system.collection_targets.failing(tenant)
    ]
    last_progress = system.collection_targets.last_progress(tenant, [i["agent_id"] for i in figures["at_risk"]])
    at_risk = [
        {
            "agent_id": item["agent_id"],
            "since": last_progress.get(item["agent_id"]),
            "detail": {k: v for k, v in item.items() if k != "agent_id"},
        }
        for item in figures["at_risk"]
    ]
    return {"stagnant": stagnant, "collection_failing": failing, "at_risk": at_risk}
