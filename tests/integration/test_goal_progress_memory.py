"""goal_progress remembers the rows it wrote and folds the next events into them in place,
before the page commits. That is only right while a page that does not commit makes the
runner forget them: here a page fails after goal_progress folded it, and the rows must come
out as a fresh replay makes them, not with the failed page counted twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.goals import ProgressUpdate
from application.ports import ReadStore, Tx
from interfaces.bootstrap import System
from projections.goal_progress import COLUMNS, GoalProgressProjection
from projections.projection import LogPage
from projections.runner import ProjectionRunner
from tests.integration.support import fresh_read_store, meta, rows, two_objectives

AGENTS = ["mem-1", "mem-2"]


class FailsOnce:
    """A read model that refuses the first page holding `position`, then takes everything."""

    name = "fails_once"
    tables = ()

    def __init__(self, position: int) -> None:
        self.position = position
        self.failed = False

    def create_tables(self, tx: Tx) -> None:
        return None

    def apply(self, tx: Tx, events: LogPage) -> None:
        if not self.failed and any(p == self.position for p, _ in events):
            self.failed = True
            raise RuntimeError("refused once")


@pytest.fixture
def stores(system: System, tmp_path: Path) -> Iterator[tuple[ReadStore, ReadStore]]:
    with (
        fresh_read_store(system.settings, tmp_path) as one,
        fresh_read_store(system.settings, tmp_path) as two,
    ):
        yield one, two


def _view_rows(store: ReadStore, tenant: str) -> list[tuple[object, ...]]:
    columns = ", ".join(c for c in COLUMNS if c not in {"updated_at", "status_since"})
    return rows(store, f"SELECT {columns} FROM goal_progress WHERE tenant = ? ORDER BY agent_id", (tenant,))


def test_a_page_that_fails_after_goal_progress_folded_it_is_not_counted_twice(
    system: System, stores: tuple[ReadStore, ReadStore], tenant: str
) -> None:
    for agent in AGENTS:
        system.goals.set_goals(tenant, agent, two_objectives(), meta())
    positions = []
    for step in range(1, 6):
        for agent in AGENTS:
            update = ProgressUpdate(agent, {"speed": step})
            positions.append(system.goals.record_progress(tenant, update, meta()).position)
    failing, reference = stores
    runner = ProjectionRunner(
        system.goals.read_log, failing, [GoalProgressProjection(), FailsOnce(positions[-3])], page_size=4
    )
    replay = ProjectionRunner(system.goals.read_log, reference, [GoalProgressProjection()], page_size=1000)
    try:
        runner.setup()
        replay.setup()
        runner.catch_up()  # the page fails once; the runner goes on from what is committed
        replay.catch_up()
    finally:
        runner.close()
        replay.close()
    assert runner.projections[1].failed  # type: ignore[attr-defined]
    assert _view_rows(failing, tenant) == _view_rows(reference, tenant)
    updates = rows(failing, "SELECT agent_id, updates FROM goal_progress WHERE tenant = ?", (tenant,))
    assert dict(updates) == {agent: 5 for agent in AGENTS}


def test_revised_goals_replace_the_remembered_goals_json(
    system: System, stores: tuple[ReadStore, ReadStore], tenant: str
) -> None:
    """A remembered row keeps its goals as encoded JSON until a GoalsSet drops it: revised
    goals must be written as revised, not as the JSON remembered from before."""
    store, _ = stores
    runner = ProjectionRunner(system.goals.read_log, store, [GoalProgressProjection()], page_size=100)
    try:
        runner.setup()
        system.goals.set_goals(tenant, "mem-rev", two_objectives("v1"), meta())
        system.goals.record_progress(tenant, ProgressUpdate("mem-rev", {"speed": 10}), meta())
        runner.catch_up()  # the row, its goals JSON included, is remembered
        system.goals.set_goals(tenant, "mem-rev", two_objectives("v2"), meta())
        system.goals.record_progress(tenant, ProgressUpdate("mem-rev", {"speed": 20}), meta())
        runner.catch_up()
    finally:
        runner.close()
    (view,) = rows(store, "SELECT view FROM goal_progress WHERE tenant = ?", (tenant,))
    assert json.loads(view[0])["goals"]["version"] == "v2"
