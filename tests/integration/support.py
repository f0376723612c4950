"""Helpers shared by the integration tests: goal definitions, fresh read stores, row dumps."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from application.goals import ProgressUpdate
from application.ports import ReadStore
from domain.goals import AgentGoals
from domain.ids import goals_id
from domain.meta import Meta
from domain.objectives import GoalDefinition, Kpi, Objective
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from projections.event_facts import EventFactsProjection
from projections.event_facts_tables import COLUMNS as FACT_COLUMNS
from projections.goal_progress import COLUMNS as PROGRESS_COLUMNS
from projections.goal_progress import GoalProgressProjection
from projections.runner import ProjectionRunner


def two_objectives(label: str = "v1") -> GoalDefinition:
    """Goals with a weighted objective and a KPI-driven objective."""
    return GoalDefinition(
        purpose_statement="Triage every support ticket",
        objectives=(
            Objective("speed", "Speed", weight=2.0),
            Objective(
                "accuracy", "Accuracy", weight=1.0, kpi=Kpi("acc", target=100.0, baseline=50.0, unit="%")
            ),
        ),
        success_criteria=("p50 triage under 2 minutes",),
        label=label,
        target_date="2030-01-01",
    )


def one_objective(objective_id: str = "o1") -> GoalDefinition:
    return GoalDefinition("Do one thing well", (Objective(objective_id, objective_id.upper()),))


def meta(actor: str = "tester", request_id: str = "") -> Meta:
    return Meta(actor=actor, request_id=request_id)


@contextmanager
def running_system(make_settings: Callable[..., Settings], **overrides: object) -> Iterator[System]:
    """A system built on the store under test with extra settings; closed afterwards."""
    built = build_system(make_settings(RUN_PROJECTIONS_IN_PROCESS="false", **overrides))
    try:
        yield built
    finally:
        built.close()


@contextmanager
def fresh_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """`settings` pointed at an empty store: a new DATA_DIR, or a new PostgreSQL database."""
    data_dir = tmp_path / f"fresh-{uuid.uuid4().hex[:8]}"
    if not settings.is_postgres:
        yield settings.model_copy(update={"data_dir": data_dir})
        return
    name = f"a2a_fresh_{uuid.uuid4().hex[:12]}"
    base, _, _ = settings.database_url.rpartition("/")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield settings.model_copy(update={"data_dir": data_dir, "database_url": f"{base}/{name}"})
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_read_store(settings: Settings, tmp_path: Path) -> Iterator[ReadStore]:
    """An empty read store of the same kind as `settings`."""
    with fresh_settings(settings, tmp_path) as fresh:
        store: ReadStore
        if fresh.is_postgres:
            store = PostgresReadStore(fresh.database_url, pool_size=2)
        else:
            store = SQLiteReadStore(fresh.read_models_path)
        try:
            yield store
        finally:
            store.close()


def rows(store: ReadStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with store.read() as tx:
        return [tuple(r) for r in tx.fetchall(sql, params)]


def progress_rows(store: ReadStore, tenant: str) -> list[tuple[Any, ...]]:
    """Every column of the tenant's goal_progress rows."""
    sql = f"SELECT {', '.join(PROGRESS_COLUMNS)} FROM goal_progress WHERE tenant = ? ORDER BY agent_id"
    return rows(store, sql, (tenant,))


def history_rows(store: ReadStore, tenant: str) -> list[tuple[Any, ...]]:
    """Every column of the tenant's history as stored: its event facts but Registered."""
    sql = (
        f"SELECT {FACT_COLUMNS} FROM event_facts WHERE tenant = ? AND type <> 'Registered' ORDER BY position"
    )
    return rows(store, sql, (tenant,))


def tenant_events(system: System, tenant: str, after: int) -> list[tuple[int, AgentGoals.Event]]:
    """The tenant's events recorded after log position `after`, with their positions."""
    found: list[tuple[int, AgentGoals.Event]] = []
    while page := system.goals.read_log(after, 1000):
        found.extend((p, e) for p, e in page if isinstance(e, AgentGoals.Event) and e.tenant == tenant)
        after = page[-1][0]
    return found


def rebuilt_rows(
    system: System, tenant: str, tmp_path: Path
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The tenant's goal_progress rows and history (`history_rows`) as a fresh rebuild from the
    log gives them."""
    with fresh_read_store(system.settings, tmp_path) as store:
        runner = ProjectionRunner(
            system.goals.read_log, store, [GoalProgressProjection(), EventFactsProjection()], page_size=1000
        )
        runner.setup()
        runner.catch_up()
        return progress_rows(store, tenant), history_rows(store, tenant)


def tracking(store: ReadStore) -> dict[str, tuple[int, str, str | None]]:
    """projection_tracking as name -> (position, state, error)."""
    found = rows(store, "SELECT name, position, state, error FROM projection_tracking")
    return {r[0]: (int(r[1]), r[2], r[3]) for r in found}


def aggregate_events(system: System, tenant: str, agent_id: str) -> list[AgentGoals.Event]:
    """Every stored event of one agent's goals, straight from the event store."""
    return list(system.goals.events.get(goals_id(tenant, agent_id)))  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.01) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout_s` (a bound, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


class ProgressWriter(threading.Thread):
    """Writes batches of progress for `agents` (tens of events per transaction) until halted."""

    def __init__(
        self, system: System, tenant: str, agents: Sequence[str], seed: int, pause_s: float = 0.0
    ) -> None:
        super().__init__(daemon=True)
        self.pause_s = pause_s
        self.system, self.tenant, self.agents = system, tenant, list(agents)
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.batches = 0

    def write_batch(self) -> None:
        updates = [
            ProgressUpdate(
                a, {"speed": round(self.rng.uniform(0, 100), 2)}, {"accuracy": self.rng.uniform(40, 110)}
            )
            for a in self.rng.sample(self.agents, min(25, len(self.agents)))
        ]
        self.system.goals.record_progress_batch(self.tenant, updates, meta("writer", f"batch-{self.batches}"))
        self.batches += 1

    def run(self) -> None:
        try:
            while not self.halt.wait(self.pause_s):
                self.write_batch()
        except BaseException as error:  # surfaced by the test
            self.error = error


class Timeline:
    """Events of in-memory aggregates, each stamped with the instant it is said to happen,
    in `events` (in that order): for read models fed with recorded times set by hand."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.goals: dict[str, AgentGoals] = {}
        self.events: list[AgentGoals.Event] = []

    def _stamp(self, agent: str, at: datetime) -> None:
        for event in self.goals[agent].collect_events():
            assert isinstance(event, AgentGoals.Event)
            self.events.append(dataclasses.replace(event, timestamp=at))

    def start(self, agent: str, at: datetime, target_date: str | None = None) -> None:
        definition = dataclasses.replace(one_objective(), target_date=target_date)
        self.goals[agent] = AgentGoals.start(self.tenant, agent, definition, meta())
        self._stamp(agent, at)

    def progress(self, agent: str, at: datetime, value: float, observed_at: datetime | None = None) -> None:
        self.goals[agent].record_progress(
            meta(), objective_progress={"o1": value}, observed_at=observed_at or at
        )
        self._stamp(agent, at)

    def status(self, agent: str, at: datetime, to: str) -> None:
        self.goals[agent].change_status(to, "because", meta())
        self._stamp(agent, at)


class Fleet(Timeline):
    """A timeline projected into `store` in as many pages as the test likes, each at positions
    beyond any in the store (and the log's), as the runner would: the analytics follow the
    facts by position."""

    def __init__(self, store: ReadStore, tenant: str) -> None:
        super().__init__(tenant)
        self.store = store

    def project(self) -> None:
        with self.store.transaction() as tx:
            found = tx.fetchone("SELECT MAX(position) FROM event_facts")
            base = max(10**15, int(found[0]) + 1 if found and found[0] is not None else 0)
            page = [(base + i, event) for i, event in enumerate(self.events)]
            for projection in (GoalProgressProjection(), EventFactsProjection()):
                projection.apply(tx, page)
        self.events = []
