"""The audit replay (goals_at) rebuilds exactly what the read model serves, now and at any
earlier version or instant, with or without snapshots."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from application.errors import GoalsNotFound
from application.goals import ProgressUpdate
from application.results import CommandResult
from domain.errors import DomainError
from domain.goals import AutoUpdate
from domain.ids import goals_id
from domain.objectives import GoalDefinition, Kpi, Objective
from infrastructure.settings import Settings
from interfaces.bootstrap import System
from projections.views import view_from_aggregate
from tests.integration.support import meta, running_system

AGENT = "replayed"
OBJECTIVES = {
    "a": Objective("a", "Alpha"),
    "b": Objective("b", "Beta", weight=3.0, milestones=(10.0, 60.0)),
    "k": Objective("k", "Kpi up", weight=2.0, kpi=Kpi("k_metric", target=200.0, baseline=100.0)),
    "d": Objective("d", "Kpi down", kpi=Kpi("d_metric", target=10.0, baseline=50.0, direction="decrease")),
}


def _definition(rng: random.Random, n: int) -> GoalDefinition:
    chosen = rng.sample(sorted(OBJECTIVES), rng.randint(1, len(OBJECTIVES)))
    return GoalDefinition(
        purpose_statement=f"purpose {n}",
        objectives=tuple(OBJECTIVES[o] for o in chosen),
        success_criteria=tuple(f"criterion {i}" for i in range(rng.randint(0, 2))),
        kpis=({"name": "free-form", "n": n},) if rng.random() < 0.3 else (),
        label=f"v{n}",
        target_date=rng.choice([None, "2031-06-30"]),
    )


def _random_command(system: System, tenant: str, rng: random.Random, step: int) -> CommandResult:
    goals = system.goals
    who = meta(f"actor-{rng.randint(1, 3)}", f"req-{step}")
    roll = rng.random()
    if roll < 0.12:
        return goals.set_goals(tenant, AGENT, _definition(rng, step), who)
    if roll < 0.70:
        current = goals.goals_at(tenant, AGENT)
        assert current.definition is not None
        ids = current.definition.objective_ids()
        objective_progress: dict[str, float] = {}
        kpi_values: dict[str, float] = {}
        for oid in rng.sample(ids, rng.randint(1, len(ids))):
            if OBJECTIVES[oid].kpi is not None and rng.random() < 0.7:
                kpi_values[oid] = round(rng.uniform(0, 260), 1)
            else:
                objective_progress[oid] = round(rng.uniform(0, 100), 2)
        update = ProgressUpdate(AGENT, objective_progress, kpi_values)
        return goals.record_progress(tenant, update, who)
    if roll < 0.92:
        target = rng.choice(["active", "paused", "completed", "cancelled"])
        return goals.change_status(tenant, AGENT, target, f"because {step}", who, reopen=rng.random() < 0.5)
    current = goals.goals_at(tenant, AGENT)
    assert current.definition is not None
    metrics = {o: f"m_{o}" for o in current.definition.objective_ids() if rng.random() < 0.5}
    config = AutoUpdate(rng.random() < 0.8, rng.randint(5, 600), "http://h.local/health", None, metrics)
    return goals.configure_auto_update(tenant, AGENT, config, who)


def _projected(system: System, tenant: str) -> dict[str, Any]:
    raw = system.progress.goal_json(tenant, AGENT)
    assert raw is not None
    view: dict[str, Any] = json.loads(raw)
    return view


def _play(system: System, tenant: str, seed: int, steps: int) -> list[dict[str, Any]]:
    """Run a seeded random command sequence; the projected view after every accepted command."""
    rng = random.Random(seed)
    system.goals.set_goals(tenant, AGENT, _definition(rng, 0), meta("creator"))
    system.runner.catch_up()
    seen = [_projected(system, tenant)]
    for step in range(1, steps + 1):
        try:
            result = _random_command(system, tenant, rng, step)
        except DomainError:
            continue  # refused transitions / progress on a closed goal write nothing
        system.runner.catch_up()
        view = _projected(system, tenant)
        assert view["version"] == result.first.version
        seen.append(view)
    return seen


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_replay_equals_projection_at_every_version_and_instant(
    make_settings: Callable[..., Settings], tenant: str, seed: int
) -> None:
    with (
        running_system(make_settings, SNAPSHOT_INTERVAL=5) as snapshotting,
        # never reaches a snapshot version, and no aggregate cache: a pure fold of the events
        running_system(make_settings, SNAPSHOT_INTERVAL=1_000_000, AGGREGATE_CACHE_SIZE=0) as plain,
    ):
        seen = _play(snapshotting, tenant, seed, steps=60)
        assert len(seen) > 15
        live = seen[-1]

        # now: replay (with snapshots, from the cache, and without either) equals the read model
        assert view_from_aggregate(snapshotting.goals.goals_at(tenant, AGENT)) == live
        assert view_from_aggregate(plain.goals.goals_at(tenant, AGENT)) == live
        assert json.loads(snapshotting.progress.goal_json(tenant, AGENT) or "null") == live

        for view in seen:
            version = view["version"]
            at = datetime.fromisoformat(view["updated_at"])
            for app in (snapshotting.goals, plain.goals):
                assert view_from_aggregate(app.goals_at(tenant, AGENT, version=version)) == view
                assert view_from_aggregate(app.goals_at(tenant, AGENT, as_of=at)) == view


def test_snapshots_are_taken_and_used(make_settings: Callable[..., Settings], tenant: str) -> None:
    with running_system(make_settings, SNAPSHOT_INTERVAL=5) as system:
        seen = _play(system, tenant, seed=7, steps=30)
        snapshots = system.goals.snapshots
        assert snapshots is not None
        taken = list(snapshots.get(goals_id(tenant, AGENT)))
        assert taken, "SNAPSHOT_INTERVAL=5 should have taken snapshots"
        assert all(s.originator_version % 5 == 0 for s in taken)
        for view in seen:
            assert view_from_aggregate(system.goals.goals_at(tenant, AGENT, version=view["version"])) == view


def test_snapshots_can_be_disabled(make_settings: Callable[..., Settings], tenant: str) -> None:
    """SNAPSHOT_INTERVAL=0 is an accepted setting (ge=0) meaning "no snapshots"."""
    with running_system(make_settings, SNAPSHOT_INTERVAL=0) as system:
        assert system.goals.snapshots is None
        seen = _play(system, tenant, seed=5, steps=12)
        assert view_from_aggregate(system.goals.goals_at(tenant, AGENT)) == seen[-1]


def test_replay_of_unknown_points(system: System, tenant: str) -> None:
    result = system.goals.set_goals(
        tenant, AGENT, GoalDefinition("p", (Objective("a", "A"),)), meta("creator")
    )
    system.runner.catch_up()
    created = datetime.fromisoformat(_projected(system, tenant)["created_at"])

    with pytest.raises(GoalsNotFound):
        system.goals.goals_at(tenant, "never-registered")
    with pytest.raises(GoalsNotFound):
        system.goals.goals_at(tenant, AGENT, version=result.first.version + 1)
    with pytest.raises(GoalsNotFound):
        system.goals.goals_at(tenant, AGENT, as_of=created.replace(year=created.year - 1))
    first = system.goals.goals_at(tenant, AGENT, version=1)
    assert first.definition is None
    assert view_from_aggregate(first)["goals"] is None
