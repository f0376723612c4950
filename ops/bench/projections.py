"""Read-side throughput and latency on PostgreSQL: catch-up, rebuild, audit replay, analytics.

Run from the repo root:

    .venv/bin/python ops/bench/projections.py [--events 1000000] [--agents 10000] [--database-url URL]
        [--seed 7] [--page-size 40000] [--batch-size 300] [--real-clock] [--as-deployed] [--profile N]

It creates a fresh database `a2a_bench_proj_<random>` on the server named by --database-url
(default: $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres) and drops it
at the end, also on Ctrl-C (two short-lived scratch databases are used for the calibration).
Phases:

  0. calibration: the bulk write path (GoalsApp.record_progress_batch, --batch-size updates of
     one reading each from 2,000 Pareto-weighted agents) on a scratch database, once with the
     System exactly as deployed (the target figure, >= 10k events/s) and once with the
     single-writer cache settings used to generate the log (below).
  1. generate: a seeded generator writes a realistic log through the real write side
     (GoalsApp in-process, RUN_PROJECTIONS_IN_PROCESS=false, SNAPSHOT_INTERVAL 100): --agents
     agents set goals (2-4 objectives, some with KPIs, most with a target date) over the first
     60% of the timeline, then progress arrives via record_progress_batch (--batch-size
     updates per transaction, the system's bulk path) from a skewed (Pareto) mix of agents;
     milestones follow from the progress, agents that reach 100 are completed, a few pause,
     resume or are cancelled. One extra agent, `agent-hot`, receives ~10,000 events (with a
     goals revision every 2,500) for the replay figures.
     Every event is written by GoalsApp's commands; to make 1M events affordable on a small
     machine the generating System is built with eventsourcing's single-writer cache settings
     (AGGREGATE_CACHE_FASTFORWARD=n, DEEPCOPY_FROM_AGGREGATE_CACHE=n: no SELECT to
     fast-forward, and no deep copy of, every cached aggregate a batch touches; correct here
     because the bench is the only writer). --as-deployed generates with the defaults instead.
     The recorded timeline spans the last 90 days: the event clock is simulated
     (eventsourcing's create_timestamp is pointed at a clock that follows the share of events
     written, ending when the run started), and `observed_at` trails it by up to 15 minutes.
     --real-clock keeps wall-clock timestamps (every event then falls within the run).
  2. catch-up: a fresh ProjectionRunner (all projections, --page-size) over the whole log into
     the live, empty read store, with a System built as deployed; events/s, and the time each
     projection's apply() and the log read took (measured around those calls in the same run).
  3. rebuild: system.rebuilder.rebuild(all names) in --rebuild-jobs processes (REBUILD_JOBS, 2
     as deployed): seconds and events/s.
  4. replay: goals_at(agent-hot, as_of=...) at 50 random instants of its lifetime, and
     goals_at(version=...) at 50 random versions: p50/p99.
  5. queries: analytics.system(tenant) with its defaults (and with the other value of
     `extended`, for information), events.buckets(tenant, bucket="day") and
     (type="ProgressRecorded", bucket="week"), 20 runs each (fewer when a query is so slow that
     45 s are spent): p50/p99, after one unmeasured call. The system analytics remembers work
     between calls in a process, and a server computes its busiest tenants' at start-up
     (System.warm_analytics): that warm-up is timed, then the first call after it, and, for
     information, a first call with nothing remembered. The system analytics are also timed
     as of instants a minute apart, as requests spaced out in time see them: the window
     slides and the at-risk goals are worked out again.

--encryption additionally copies the generated log, event by event, into a second database with
ENCRYPTION=on (every payload sealed under its tenant's data key, same positions), and catches up
all projections on each, four times each (off on on off on off off on), into empty read
models: the cost of encryption on catch-up is 1 - on/off of the mean rates (target <= 10%),
printed with the CPU this process spent per event, which the machine's other load moves less,
and the cost of mapping stored events to domain events alone.
--reuse NAME --encryption-only runs that comparison alone on a kept database.

--profile N additionally runs a catch-up of the first N events under cProfile into a
scratch schema and prints where the time goes (log read, JSON, SQL, each projection).

The server's autovacuum setting is printed: with autovacuum off, read-model tables are never
vacuumed or analysed, which changes the plans and the cost of goal_progress's upserts.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import heapq
import inspect
import math
import os
import pstats
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate, count
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from eventsourcing.domain import CanCreateTimestamp
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
# This file is named like the `projections` package: run as a script, its own directory comes
# first on sys.path and would shadow the package, so it is taken off.
HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(HERE)]
sys.path.insert(0, str(ROOT))

from application.goals import ProgressUpdate  # noqa: E402
from application.ports import Tx  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Kpi, Objective  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import System, build_system, settle_heap  # noqa: E402
from interfaces.wiring.database import STORE_ERRORS  # noqa: E402
from ops.bench.scratch import create_database, drop_database, with_db  # noqa: E402
from projections.analytics import AnalyticsQueries  # noqa: E402
from projections.projection import LogPage, Projection  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TENANT = "bench"
HOT_AGENT = "agent-hot"
HOT_EVENTS = 10_000
HOT_REVISION_EVERY = 2_500
TIMELINE = timedelta(days=90)
CREATION_SHARE = 0.6  # agents set their goals over the first 60% of the timeline
INITIAL_FLEET = 0.3  # ... except this share, which exists from the start
EVENTS_PER_UPDATE = 1.12  # a progress update plus the milestones it crosses, on average
STATUS_CHANGE_SHARE = 0.04  # agents that pause (and mostly resume) or are cancelled
CALIBRATION_AGENTS = 2_000
CALIBRATION_BATCHES = 15
REPLAY_SAMPLES = 50
QUERY_BUDGET_S = 45.0
QUERY_RUNS = 20

console = Console(width=None if sys.stdout.isatty() else 160)

TITLES = (
    "Answer support tickets",
    "Reduce response latency",
    "Improve answer accuracy",
    "Keep costs within budget",
    "Onboard new data sources",
    "Raise customer satisfaction",
    "Automate weekly reports",
    "Cut escalation rate",
    "Expand language coverage",
    "Harden the deployment",
)
KPIS = (
    Kpi(metric="tickets_resolved", unit="tickets", baseline=0.0, target=500.0, direction="increase"),
    Kpi(metric="p95_latency_ms", unit="ms", baseline=800.0, target=200.0, direction="decrease"),
    Kpi(metric="accuracy", unit="ratio", baseline=0.7, target=0.95, direction="increase"),
    Kpi(metric="cost_per_day", unit="usd", baseline=120.0, target=60.0, direction="decrease"),
    Kpi(metric="csat", unit="points", baseline=3.5, target=4.6, direction="increase"),
)


# --- database lifecycle ----------------------------------------------------------------------


def reset_read_models(system: System) -> None:
    """Drop a kept database's read models (and any rebuild shadow), keeping its log."""
    tables = [t for p in system.runner.projections for t in p.tables]
    with system.store.transaction() as tx:
        # goal_history: the history's own table in earlier versions
        for table in [*tables, "goal_history", "projection_tracking", "projection_skips"]:
            tx.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        tx.execute("DROP SCHEMA IF EXISTS a2a_rebuild CASCADE")


def log_end(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT COALESCE(MAX(notification_id), 0) FROM a2a_events").fetchone()
    return int(row[0]) if row else 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# --- the simulated event clock ---------------------------------------------------------------


class SimClock:
    """Event timestamps that follow the share of the log written so far across the timeline.

    Installed as eventsourcing's `create_timestamp`, so every event and snapshot the real write
    path creates gets an instant of the simulated history; strictly increasing (1 µs apart
    within a step), so per-aggregate time order equals version order, as it does live.
    """

    def __init__(self, end: datetime, span: timedelta) -> None:
        self.start = end - span
        self.span = span
        self._base = self.start
        self._last = self.start
        self._tick = 0
        self._saved: Any = None

    def at(self, fraction: float) -> None:
        base = self.start + self.span * min(1.0, fraction)
        self._base = max(base, self._last + timedelta(microseconds=1))
        self._tick = 0

    def now(self) -> datetime:
        moment = self._base + timedelta(microseconds=self._tick)
        self._tick += 1
        self._last = moment
        return moment

    def install(self) -> None:
        self._saved = CanCreateTimestamp.__dict__["create_timestamp"]
        CanCreateTimestamp.create_timestamp = staticmethod(self.now)  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._saved is not None:
            CanCreateTimestamp.create_timestamp = self._saved  # type: ignore[method-assign]
            self._saved = None


class WallClock:
    """--real-clock: events keep eventsourcing's own timestamps."""

    def at(self, fraction: float) -> None:
        pass

    def now(self) -> datetime:
        return datetime.now(UTC)

    def install(self) -> None:
        pass

    def uninstall(self) -> None:
        pass


# --- the generator ---------------------------------------------------------------------------


@dataclass
class SimAgent:
    """The generator's model of one agent (what it will report next), not the system's state."""

    agent_id: str
    objectives: list[tuple[str, Kpi | None]]
    weight: float
    start: float  # share of the log written when it sets its goals
    speed: float
    step: float = 0.0
    target_date: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    status: str = "pending"
    version: int = 0
    done: bool = False

    def definition(self, revision: int = 1) -> GoalDefinition:
        objectives = tuple(
            Objective(
                id=oid,
                title=TITLES[(int(oid[1:]) * 3 + len(self.agent_id) + revision) % len(TITLES)],
                weight=1.0 + (int(oid[1:]) + revision) % 3 if revision > 1 else 1.0 + int(oid[1:]) % 2,
                kpi=kpi,
            )
            for oid, kpi in self.objectives
        )
        return GoalDefinition(
            purpose_statement=f"{self.agent_id} serves its team (revision {revision})",
            objectives=objectives,
            success_criteria=("all objectives at 100%",),
            label=f"r{revision}",
            target_date=self.target_date,
        )

    def next_update(self, rng: random.Random, observed_at: datetime, *, hot: bool = False) -> ProgressUpdate:
        touched = rng.sample(self.objectives, 2 if len(self.objectives) > 1 and rng.random() < 0.4 else 1)
        progress: dict[str, float] = {}
        kpis: dict[str, float] = {}
        for oid, kpi in touched:
            now = self.values.get(oid, 0.0)
            if hot:  # a random walk that keeps crossing thresholds, never finishing
                pct = min(98.0, max(0.0, now + rng.gauss(0.3, 6.0)))
            elif rng.random() < 0.08:
                pct = max(0.0, now - self.step * rng.random())
            else:
                pct = min(100.0, now + self.step * 2 * rng.random())
            pct = round(pct, 2)
            self.values[oid] = pct
            if kpi is None:
                progress[oid] = pct
            else:
                kpis[oid] = round(kpi.baseline + pct / 100.0 * (kpi.target - kpi.baseline), 4)
        if not hot and all(self.values.get(oid, 0.0) >= 100.0 for oid, _ in self.objectives):
            self.done = True
        return ProgressUpdate(
            self.agent_id, objective_progress=progress, kpi_values=kpis, observed_at=observed_at
        )


@dataclass
class GenStats:
    events: int = 0
    seconds: float = 0.0
    batch_seconds: float = 0.0
    batch_events: int = 0
    batches: int = 0
    updates: int = 0
    commands: int = 0
    command_seconds: float = 0.0
    created: int = 0
    completed: int = 0
    paused: int = 0
    resumed: int = 0
    cancelled: int = 0
    hot_version: int = 0
    log_position: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def batch_rate(self) -> float:
        return self.batch_events / self.batch_seconds if self.batch_seconds else 0.0


class Generator:
    def __init__(
        self,
        system: System,
        args: argparse.Namespace,
        clock: SimClock | WallClock,
        *,
        agents: int | None = None,
    ) -> None:
        self.system = system
        self.goals = system.goals
        self.args = args
        self.clock = clock
        self.rng = random.Random(args.seed)
        self.stats = GenStats()
        self.target = args.events
        self.agents = self._make_agents(args.agents if agents is None else agents)
        self.hot = self._make_hot()
        self.by_id = {a.agent_id: a for a in [*self.agents, self.hot]}
        self.live: list[SimAgent] = []
        self._cum: list[float] = []
        self._dirty = True
        self._resume: list[tuple[float, str]] = []
        self._next_hot_revision = HOT_REVISION_EVERY
        self._hot_revision = 1

    # -- the population -----------------------------------------------------------------------

    def _make_agents(self, n: int) -> list[SimAgent]:
        rng = self.rng
        agents = []
        for i in range(n):
            count = rng.choice((2, 3, 3, 4))
            objectives = [
                (f"o{k + 1}", rng.choice(KPIS) if rng.random() < 0.35 else None) for k in range(count)
            ]
            start = 0.0 if rng.random() < INITIAL_FLEET else rng.uniform(0.0, CREATION_SHARE)
            agents.append(
                SimAgent(
                    agent_id=f"agent-{i:05d}",
                    objectives=objectives,
                    weight=min(100.0, rng.paretovariate(1.16)),
                    start=start,
                    speed=rng.uniform(0.3, 1.4),
                )
            )
        agents.sort(key=lambda a: a.start)
        updates = self.target / EVENTS_PER_UPDATE
        total_weight = sum(a.weight for a in agents) or 1.0
        for agent in agents:
            expected = max(1.0, updates * (1.0 - agent.start) * agent.weight / total_weight)
            agent.step = min(40.0, 100.0 * len(agent.objectives) / (expected * 1.4) * agent.speed)
        return agents

    def _make_hot(self) -> SimAgent:
        return SimAgent(
            agent_id=HOT_AGENT,
            objectives=[("o1", None), ("o2", KPIS[1]), ("o3", None)],
            weight=0.0,
            start=0.0,
            speed=1.0,
        )

    def _target_date(self, fraction: float) -> str | None:
        if self.rng.random() < 0.25:
            return None
        created = self.clock.now() if isinstance(self.clock, WallClock) else self.clock.start
        created += TIMELINE * fraction
        return (created + timedelta(days=self.rng.uniform(20, 150))).date().isoformat()

    # -- commands -----------------------------------------------------------------------------

    def _meta(self, kind: str) -> Meta:
        return Meta(actor="bench-collector", request_id=f"{kind}-{self.stats.commands + self.stats.batches}")

    def _single(self, agent: SimAgent, command: Callable[[], Any]) -> None:
        started = time.perf_counter()
        result = command()
        self.stats.command_seconds += time.perf_counter() - started
        self.stats.commands += 1
        version = max(item.version for item in result.items if item.agent_id == agent.agent_id)
        self.stats.events += version - agent.version
        agent.version = version

    def _create(self, agent: SimAgent, fraction: float) -> None:
        agent.target_date = self._target_date(fraction) if agent is not self.hot else None
        self._single(
            agent,
            lambda: self.goals.set_goals(TENANT, agent.agent_id, agent.definition(), self._meta("create")),
        )
        agent.status = "active"
        if agent is not self.hot:
            self.live.append(agent)
            self._dirty = True
        self.stats.created += 1

    def _status(self, agent: SimAgent, status: str, reason: str) -> None:
        self._single(
            agent,
            lambda: self.goals.change_status(TENANT, agent.agent_id, status, reason, self._meta("status")),
        )
        agent.status = status
        if status == "active":
            self.live.append(agent)
        else:
            self.live.remove(agent)
        self._dirty = True

    def _pick(self, k: int) -> list[SimAgent]:
        if not self.live or k <= 0:
            return []
        if self._dirty:
            self._cum = list(accumulate(a.weight for a in self.live))
            self._dirty = False
        return self.rng.choices(self.live, cum_weights=self._cum, k=k)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, progress: Progress) -> GenStats:
        args, rng, stats = self.args, self.rng, self.stats
        task = progress.add_task("generate", total=self.target)
        pending = list(self.agents)
        pending.reverse()  # pop() from the end: earliest start first
        batches_expected = max(1.0, self.target / EVENTS_PER_UPDATE / args.batch_size)
        status_change_p = STATUS_CHANGE_SHARE * len(self.agents) / batches_expected
        self.clock.install()
        started = time.perf_counter()
        try:
            self.clock.at(0.0)
            self._create(self.hot, 0.0)
            while stats.events < self.target:
                fraction = stats.events / self.target
                self.clock.at(fraction)
                while pending and pending[-1].start <= fraction:
                    self._create(pending.pop(), fraction)
                while self._resume and self._resume[0][0] <= fraction:
                    agent = self.by_id[heapq.heappop(self._resume)[1]]
                    if agent.status == "paused":
                        self._status(agent, "active", "back from maintenance")
                        stats.resumed += 1
                self._hot_revise()
                # The batch is stamped at the end of the stretch of timeline it fills, so the
                # last one lands at the end of the timeline.
                self.clock.at((stats.events + args.batch_size * EVENTS_PER_UPDATE) / self.target)
                self._batch()
                self._status_changes(rng, status_change_p, fraction)
                progress.update(
                    task,
                    completed=min(stats.events, self.target),
                    description=f"generate {stats.events / (time.perf_counter() - started):,.0f} ev/s",
                )
                if not self.live and not pending:
                    console.print("[yellow]every agent finished before the event target[/]")
                    break
        finally:
            self.clock.uninstall()
        stats.seconds = time.perf_counter() - started
        stats.hot_version = self.hot.version
        stats.log_position = self.goals.log_position()
        return stats

    def _hot_revise(self) -> None:
        if self.hot.version >= self._next_hot_revision and self.hot.version < HOT_EVENTS - 50:
            self._hot_revision += 1
            self._next_hot_revision += HOT_REVISION_EVERY
            definition = self.hot.definition(self._hot_revision)
            self._single(
                self.hot, lambda: self.goals.set_goals(TENANT, HOT_AGENT, definition, self._meta("revise"))
            )

    def calibrate(self, batches: int) -> tuple[float, float]:
        """(set_goals commands/s, bulk-path events/s) of this system: every agent sets its goals,
        then `batches` batches of one reading each from Pareto-weighted agents (no hot agent)."""
        started = time.perf_counter()
        for agent in self.agents:
            self._create(agent, 0.0)
        creates = len(self.agents) / (time.perf_counter() - started)
        before = self.stats.batch_events, self.stats.batch_seconds
        for _ in range(batches):
            self._batch(hot=False)
        events = self.stats.batch_events - before[0]
        return creates, events / (self.stats.batch_seconds - before[1])

    def _batch(self, *, hot: bool = True) -> None:
        args, rng, stats = self.args, self.rng, self.stats
        # The hot agent keeps pace with the log so that its ~10k events span the whole timeline.
        ahead = (stats.events + args.batch_size * EVENTS_PER_UPDATE) / self.target
        wanted = min(HOT_EVENTS, HOT_EVENTS * ahead) - self.hot.version
        hot_updates = max(0, min(60, round(wanted / 1.03), HOT_EVENTS - 1 - self.hot.version)) if hot else 0
        now = self.clock.now()
        updates = [
            self.hot.next_update(rng, now - timedelta(seconds=rng.uniform(0, 900)), hot=True)
            for _ in range(hot_updates)
        ]
        for agent in self._pick(args.batch_size - hot_updates):
            updates.append(agent.next_update(rng, now - timedelta(seconds=rng.uniform(0, 900))))
        if not updates:
            return
        started = time.perf_counter()
        result = self.goals.record_progress_batch(TENANT, updates, self._meta("batch"))
        stats.batch_seconds += time.perf_counter() - started
        stats.batches += 1
        stats.updates += len(updates)
        written = 0
        for item in result.items:
            agent = self.by_id[item.agent_id]
            written += item.version - agent.version
            agent.version = item.version
        stats.events += written
        stats.batch_events += written
        for agent in {u.agent_id: self.by_id[u.agent_id] for u in updates}.values():
            if agent.done and agent.status == "active":
                self._status(agent, "completed", "all objectives met")
                stats.completed += 1

    def _status_changes(self, rng: random.Random, p: float, fraction: float) -> None:
        while p > 0 and self.live and rng.random() < min(p, 0.9):
            p -= 1.0
            agent = rng.choice(self.live)
            if rng.random() < 0.7:
                self._status(agent, "paused", "maintenance window")
                heapq.heappush(self._resume, (fraction + rng.uniform(0.01, 0.1), agent.agent_id))
                self.stats.paused += 1
            else:
                self._status(agent, "cancelled", "agent retired")
                self.stats.cancelled += 1


# --- measuring the runner --------------------------------------------------------------------


class TimedProjection:
    """Delegates to a projection and adds up the time its apply() takes."""

    def __init__(self, inner: Projection) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0
        self.events = 0

    @property
    def tables(self) -> Sequence[str]:
        return self.inner.tables

    def create_tables(self, tx: Tx) -> None:
        self.inner.create_tables(tx)

    def apply(self, tx: Tx, events: LogPage) -> None:
        started = time.perf_counter()
        self.inner.apply(tx, events)
        self.seconds += time.perf_counter() - started
        self.events += len(events)


class TimedLog:
    def __init__(self, read_log: Callable[[int, int], LogPage]) -> None:
        self.read_log = read_log
        self.seconds = 0.0

    def __call__(self, after: int, limit: int) -> LogPage:
        started = time.perf_counter()
        page = self.read_log(after, limit)
        self.seconds += time.perf_counter() - started
        return page


@dataclass
class CatchUp:
    events: int
    seconds: float
    read_log_s: float
    per_projection: dict[str, float]
    split: dict[str, float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def catch_up(
    system: System, args: argparse.Namespace, progress: Progress, end: int, *, split: bool = True
) -> CatchUp:
    timed = [TimedProjection(p) for p in system.runner.projections]
    read_log = TimedLog(system.goals.read_log)
    runner = ProjectionRunner(read_log, system.store, timed, page_size=args.page_size, errors=STORE_ERRORS)
    runner.setup()
    task = progress.add_task("catch-up", total=end)
    started = time.perf_counter()

    def shown() -> None:
        done = runner.reached
        elapsed = time.perf_counter() - started
        progress.update(task, completed=done, description=f"catch-up {done / elapsed:,.0f} ev/s")

    total = runner.catch_up(on_page=shown)
    runner.close()
    seconds = time.perf_counter() - started
    shares = decode_split(system, args.page_size, end) if split else {}
    return CatchUp(total, seconds, read_log.seconds, {p.name: p.seconds for p in timed}, shares)


def decode_split(system: System, page_size: int, end: int, pages: int = 5) -> dict[str, float]:
    """Seconds per event of the log read, split: SQL fetch, JSON decode, the rest of mapping."""
    goals = system.goals
    rng = random.Random(1)
    sql = json = mapping = 0.0
    events = 0
    for _ in range(pages):
        after = rng.randrange(0, max(1, end - page_size))
        t0 = time.perf_counter()
        notes = goals.recorder.select_notifications(start=after, limit=page_size, inclusive_of_start=False)
        t1 = time.perf_counter()
        for n in notes:
            goals.mapper.transcoder.decode(n.state)
        t2 = time.perf_counter()
        for n in notes:
            goals.mapper.to_domain_event(n)
        t3 = time.perf_counter()
        sql += t1 - t0
        json += t2 - t1
        mapping += (t3 - t2) - (t2 - t1)
        events += len(notes)
    events = max(events, 1)
    return {"sql": sql / events, "json": json / events, "map": max(0.0, mapping) / events}


# --- latency helpers -------------------------------------------------------------------------


def pct(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def timed_ms(fn: Callable[[], Any], runs: int, budget_s: float = QUERY_BUDGET_S) -> list[float]:
    """Latencies (ms) of `runs` calls after a warm-up; stops early (after at least 3) once
    `budget_s` is spent, so a query far off its target cannot stall the run."""
    started = time.perf_counter()
    fn()  # warm-up (connections, prepared statements, what a query remembers between calls)
    spent = time.perf_counter() - started
    out: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
        spent += out[-1] / 1000
        if spent > budget_s and len(out) >= 3:
            break
    return out


# --- profiling -------------------------------------------------------------------------------


def profile_catch_up(system: System, args: argparse.Namespace, events: int) -> None:
    """A catch-up of the first `events` events under cProfile, into a scratch schema."""
    shadow = system.store.open_shadow()
    try:
        runner = ProjectionRunner(
            system.goals.read_log, shadow, system.runner.projections, page_size=args.page_size
        )
        runner.setup()
        profiler = cProfile.Profile()
        total = 0
        started = time.perf_counter()
        profiler.enable()
        while total < events and (n := runner.run_page()):
            total += n
        profiler.disable()
        wall = time.perf_counter() - started
    finally:
        system.store.drop_shadow(shadow)
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cumulative(file_part: str, func: str) -> float:
        return float(sum(v[3] for (f, _, name), v in raw.items() if file_part in f and name == func))

    profiled = cumulative("projections/runner.py", "run_page") or wall
    rows = [
        ("run_page (everything)", cumulative("projections/runner.py", "run_page")),
        ("  read_log", cumulative("application/goals.py", "read_log")),
        ("    select_page (SQL + rows)", cumulative("infrastructure/eventstore.py", "select_page")),
        ("    mapper.to_domain_event", cumulative("eventsourcing/persistence.py", "to_domain_event")),
        ("      reviving transcoded values (_revive)", cumulative("application/transcodings.py", "_revive")),
        ("  goal_progress.apply", cumulative("projections/goal_progress.py", "apply")),
        ("    _load_many (SELECT + orjson.loads)", cumulative("projections/goal_progress.py", "_load_many")),
        ("    _fold", cumulative("projections/goal_progress.py", "_fold")),
        ("    values() (orjson of views)", cumulative("projections/goal_progress.py", "values")),
        ("  event_facts.apply", cumulative("projections/event_facts.py", "apply")),
        ("  clients.apply", cumulative("projections/clients.py", "apply")),
        (
            "  PostgresTx.executemany (all projections)",
            cumulative("infrastructure/readstore.py", "executemany"),
        ),
        (
            "  PostgresTx.fetchall/fetchone",
            cumulative("infrastructure/readstore.py", "fetchall")
            + cumulative("infrastructure/readstore.py", "fetchone"),
        ),
        (
            "  PostgresTx.append_rows (COPY, every table)",
            cumulative("infrastructure/readstore.py", "append_rows"),
        ),
        (
            "  definition_json / iso (views.py)",
            cumulative("projections/views.py", "definition_json") + cumulative("projections/views.py", "iso"),
        ),
        ("  commit (transaction exit)", cumulative("psycopg/transaction.py", "__exit__")),
    ]
    table = Table(title=f"cProfile: catch-up of {total:,} events, {wall:.1f}s wall under the profiler")
    for column in ("where", "cumulative s", "share of run_page"):
        table.add_column(column)
    for label, seconds in rows:
        table.add_row(label, f"{seconds:.2f}", f"{seconds / profiled:.0%}")
    console.print(table)
    stats.sort_stats("tottime").print_stats(25)


# --- main ------------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = False

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "PASS" if ok else "MISS"

    def shown(self) -> str:
        if self.unit == "ev/s":
            return f"{self.value:,.0f} ev/s"
        if self.unit == "s":
            return f"{self.value:.1f}s"
        return f"{self.value:.1f}{self.unit}"

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        sign = ">=" if self.higher_is_better else "<="
        if self.unit == "ev/s":
            return f"{sign} {self.target / 1000:g}k"
        return f"{sign} {self.target:g}{self.unit}"


# eventsourcing settings for a single writer: the aggregate cache is trusted (no SELECT to
# fast-forward each cached aggregate before a command) and not deep-copied on every load.
SINGLE_WRITER_ENV = {"AGGREGATE_CACHE_FASTFORWARD": "n", "DEEPCOPY_FROM_AGGREGATE_CACHE": "n"}


def build(
    database_url: str, data_dir: str, extra_env: dict[str, str] | None = None, *, master_keys: str = ""
) -> System:
    """The System as deployed (SNAPSHOT_INTERVAL 100, projections not running in process), with
    payloads encrypted under `master_keys` when given; `extra_env` is set in os.environ while
    it is built (eventsourcing reads it from there)."""
    settings = Settings(
        APP_ENV="test",
        DATABASE_URL=database_url,
        DATA_DIR=data_dir,
        RUN_PROJECTIONS_IN_PROCESS="false",
        ENCRYPTION="on" if master_keys else "off",
        MASTER_KEYS=master_keys or None,
    )
    saved = {k: os.environ.get(k) for k in extra_env or {}}
    os.environ.update(extra_env or {})
    try:
        return build_system(settings)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def calibrate(args: argparse.Namespace, data_dir: str) -> dict[str, float]:
    """The bulk write path as deployed and with the single-writer cache settings, each on a
    scratch database: CALIBRATION_AGENTS agents, then CALIBRATION_BATCHES batches."""
    found: dict[str, float] = {}
    for label, env in (("deployed", None), ("single_writer", SINGLE_WRITER_ENV)):
        name, url = create_database(args.database_url, "a2a_bench_proj_")
        system: System | None = None
        try:
            system = build(url, data_dir, env)
            shape = argparse.Namespace(**{**vars(args), "events": CALIBRATION_BATCHES * args.batch_size})
            generator = Generator(system, shape, WallClock(), agents=CALIBRATION_AGENTS)
            found[f"{label}_creates"], found[label] = generator.calibrate(CALIBRATION_BATCHES)
        finally:
            if system is not None:
                system.close()
            drop_database(args.database_url, name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL), help="an admin URL"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--page-size",
        type=int,
        default=Settings().projection_page_size,
        help="catch-up page size (default: PROJECTION_PAGE_SIZE, which rebuilds use)",
    )
    parser.add_argument("--batch-size", type=int, default=300, help="updates per record_progress_batch")
    parser.add_argument("--real-clock", action="store_true", help="do not simulate 90 days of timestamps")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile a catch-up of N events")
    parser.add_argument(
        "--as-deployed",
        action="store_true",
        help="generate with eventsourcing's default cache settings too (about 5x slower)",
    )
    parser.add_argument(
        "--rebuild-jobs",
        type=int,
        default=Settings().rebuild_jobs,
        help="processes the rebuild replays in (REBUILD_JOBS; default as deployed)",
    )
    parser.add_argument(
        "--encryption",
        action="store_true",
        help="also compare catch-up on a sealed copy of the log (ENCRYPTION=on)",
    )
    parser.add_argument(
        "--encryption-only", action="store_true", help="with --reuse and --encryption: only that comparison"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end (prints its name)")
    parser.add_argument(
        "--reuse",
        metavar="NAME",
        help="measure on a database a --keep run left (its read models are dropped first); no generation",
    )
    args = parser.parse_args()
    args.encryption = args.encryption or args.encryption_only

    signal.signal(signal.SIGTERM, _interrupt)
    if args.reuse:
        name, url = args.reuse, with_db(args.database_url, args.reuse)
    else:
        name, url = create_database(args.database_url, "a2a_bench_proj_")
    data_dir = tempfile.mkdtemp(prefix="a2a-bench-proj-")
    system: System | None = None
    console.print(f"database {name}; {args.events:,} events, {args.agents:,} agents, seed {args.seed}")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute("SHOW autovacuum").fetchone()
        autovacuum = found[0] if found else "?"
        if autovacuum != "on":
            console.print(
                f"[yellow]autovacuum is {autovacuum} on this server: read-model tables will be neither"
                " vacuumed nor analysed during the run[/]"
            )
        if args.reuse:
            system = build(url, data_dir)
            settle_heap()  # as `a2a-goals project` and `serve` do once started
            reset_read_models(system)
            figures = [] if args.encryption_only else measure(system, args, log_end(url))
            if args.encryption:
                figures += encryption_cost(system, args, log_end(url), data_dir)
            report(figures)
            print(f"projections: server autovacuum={autovacuum}")
            if args.profile:
                profile_catch_up(system, args, args.profile)
            return
        rates = calibrate(args, data_dir)
        console.print(
            f"bulk path calibration ({CALIBRATION_AGENTS:,} agents, {CALIBRATION_BATCHES} batches of"
            f" {args.batch_size}): as deployed {rates['deployed']:,.0f} ev/s"
            f" (set_goals {rates['deployed_creates']:,.0f}/s); single-writer cache settings"
            f" {rates['single_writer']:,.0f} ev/s (set_goals {rates['single_writer_creates']:,.0f}/s)"
        )
        figures = [
            Figure("bulk_deployed", "bulk write path, as deployed", rates["deployed"], "ev/s", 10_000, True),
            Figure(
                "bulk_single_writer", "  with single-writer cache settings", rates["single_writer"], "ev/s"
            ),
        ]
        system = build(url, data_dir, None if args.as_deployed else SINGLE_WRITER_ENV)
        gen = generate(system, args)
        figures.append(Figure("generate", "generation of the log (this run)", gen.rate, "ev/s"))
        system.close()
        # The measurements use the System exactly as deployed.
        system = build(url, data_dir)
        settle_heap()
        figures += measure(system, args, gen.log_position)
        if args.encryption:
            figures += encryption_cost(system, args, gen.log_position, data_dir)
        report(figures)
        print(f"projections: server autovacuum={autovacuum}")
        if args.profile:
            profile_catch_up(system, args, args.profile)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        raise SystemExit(130) from None
    finally:
        if system is not None:
            system.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        if args.keep or args.reuse:
            console.print(f"kept {name}: measure again with --reuse {name}")
        else:
            drop_database(args.database_url, name)
            console.print(f"dropped {name}")


COLUMNS = (
    TextColumn("{task.description:<28}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
    TimeRemainingColumn(),
)


def generate(system: System, args: argparse.Namespace) -> GenStats:
    end = datetime.now(UTC)
    clock: SimClock | WallClock = WallClock() if args.real_clock else SimClock(end, TIMELINE)
    with Progress(*COLUMNS, console=console) as progress:
        gen = Generator(system, args, clock).run(progress)
    console.print(
        f"generated {gen.events:,} events (log position {gen.log_position:,}) in {gen.seconds:.1f}s ="
        f" {gen.rate:,.0f} ev/s; batches: {gen.batches:,} x ~{gen.updates / max(gen.batches, 1):.0f} updates,"
        f" {gen.batch_events:,} events in {gen.batch_seconds:.1f}s = {gen.batch_rate:,.0f} ev/s;"
        f" single commands: {gen.commands:,} in {gen.command_seconds:.1f}s"
        f" ({gen.command_seconds / max(gen.commands, 1) * 1000:.1f} ms each)"
    )
    console.print(
        f"agents created {gen.created:,}, completed {gen.completed:,}, paused {gen.paused:,}"
        f" (resumed {gen.resumed:,}), cancelled {gen.cancelled:,}; {HOT_AGENT} at version {gen.hot_version:,}"
    )
    return gen


def measure(system: System, args: argparse.Namespace, end_position: int) -> list[Figure]:
    figures: list[Figure] = []
    # 2. catch-up
    with Progress(*COLUMNS, console=console) as progress:
        caught = catch_up(system, args, progress, end_position)
    shares = ", ".join(
        f"{name} {seconds:.1f}s ({seconds / caught.seconds:.0%})"
        for name, seconds in [("read_log", caught.read_log_s), *caught.per_projection.items()]
    )
    # The log is read ahead in a thread and each page's SQL runs on the write-behind thread,
    # so these overlap one another and the folding: each is a share of the wall time, and
    # together they may pass 100%.
    console.print(
        f"catch-up: {caught.events:,} events in {caught.seconds:.1f}s; wall time spent in"
        f" (overlapping): {shares}"
    )
    split = caught.split
    console.print(
        "log read per event (sampled pages): "
        f"SQL fetch {split['sql'] * 1e6:.1f} µs, JSON decode {split['json'] * 1e6:.1f} µs,"
        f" event construction {split['map'] * 1e6:.1f} µs"
    )
    figures.append(Figure("catch_up", f"catch-up, page {args.page_size}", caught.rate, "ev/s", 30_000, True))
    for name, seconds in caught.per_projection.items():
        figures.append(
            Figure(
                f"apply_{name}", f"  {name}.apply alone", caught.events / seconds if seconds else 0, "ev/s"
            )
        )
    figures.append(
        Figure(
            "read_log",
            "  read_log alone",
            caught.events / caught.read_log_s if caught.read_log_s else 0,
            "ev/s",
        )
    )
    sanity(system, args)

    # 3. rebuild
    with Progress(*COLUMNS, console=console) as progress:
        task = progress.add_task("rebuild all", total=end_position)
        started = time.perf_counter()
        result = system.rebuilder.rebuild(
            system.rebuilder.names,
            restart=True,
            progress=lambda at, _end: progress.update(task, completed=at),
            jobs=args.rebuild_jobs,
        )
        wall = time.perf_counter() - started
    console.print(
        f"rebuild {', '.join(result.names)} in {args.rebuild_jobs} process(es): {result.events:,} events,"
        f" {result.seconds:.1f}s replaying, {wall:.1f}s with the swap"
    )
    figures.append(
        Figure("rebuild_all", f"rebuild all projections ({args.rebuild_jobs} jobs)", wall, "s", 60.0)
    )
    figures.append(Figure("rebuild_rate", "  rebuild rate", result.events / wall, "ev/s"))
    sanity(system, args)

    # 4. audit replay of the hot agent
    goals = system.goals
    current = goals.goals_at(TENANT, HOT_AGENT)
    first, last = current.created_on, current.modified_on
    rng = random.Random(args.seed)
    instants = [first + (last - first) * rng.random() for _ in range(REPLAY_SAMPLES)]
    versions = [rng.randint(1, current.version) for _ in range(REPLAY_SAMPLES)]
    goals.goals_at(TENANT, HOT_AGENT, as_of=last)  # warm-up
    as_of_ms, version_ms = [], []
    for instant in instants:
        started = time.perf_counter()
        found = goals.goals_at(TENANT, HOT_AGENT, as_of=instant)
        as_of_ms.append((time.perf_counter() - started) * 1000)
        assert found.modified_on <= instant
    for version in versions:
        started = time.perf_counter()
        found = goals.goals_at(TENANT, HOT_AGENT, version=version)
        version_ms.append((time.perf_counter() - started) * 1000)
        assert found.version == version
    console.print(
        f"replay of {HOT_AGENT} (version {current.version:,}, {first:%Y-%m-%d} .. {last:%Y-%m-%d}):"
        f" as_of max {max(as_of_ms):.1f} ms, version max {max(version_ms):.1f} ms"
    )
    figures += [
        Figure(
            "as_of_p50", f"goals_at(as_of=) p50, {REPLAY_SAMPLES} instants", pct(as_of_ms, 0.5), " ms", 20
        ),
        Figure("as_of_p99", "goals_at(as_of=) p99", pct(as_of_ms, 0.99), " ms", 20),
        Figure(
            "version_p50",
            f"goals_at(version=) p50, {REPLAY_SAMPLES} versions",
            pct(version_ms, 0.5),
            " ms",
            20,
        ),
        Figure("version_p99", "goals_at(version=) p99", pct(version_ms, 0.99), " ms", 20),
    ]

    # 5. queries
    analytics = system.analytics
    # The system analytics remembers work between calls (per process). A server warms the
    # busiest tenants' in the background at start-up (System.warm_analytics): that is timed,
    # then the first request after it; and, for information, a call with nothing remembered.
    started = time.perf_counter()
    warming = system.warm_analytics()
    if warming is not None:
        warming.join()
    warm_s = time.perf_counter() - started
    started = time.perf_counter()
    analytics.system(TENANT)
    first_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    AnalyticsQueries(system.store).system(TENANT)
    cold_ms = (time.perf_counter() - started) * 1000
    # `extended` is what GET /analytics serves; whichever the default is, the other is timed too.
    parameter = inspect.signature(analytics.system).parameters.get("extended")
    default_extended = parameter.default if parameter is not None else None
    defaults = timed_ms(lambda: analytics.system(TENANT), QUERY_RUNS)
    other = (
        timed_ms(lambda: analytics.system(TENANT, extended=not default_extended), QUERY_RUNS)
        if default_extended is not None
        else []
    )
    # Requests spaced a minute apart: the window slides, points leave it, and the at-risk
    # goals are worked out again (the fits of agents whose points did not change are kept).
    minutes = (datetime.now(UTC) + timedelta(minutes=n) for n in count(1))
    sliding = timed_ms(lambda: analytics.system(TENANT, now=next(minutes)), QUERY_RUNS)
    day = timed_ms(lambda: system.events.buckets(TENANT, bucket="day"), QUERY_RUNS)
    week = timed_ms(lambda: system.events.buckets(TENANT, type="ProgressRecorded", bucket="week"), QUERY_RUNS)
    summary = analytics.system(TENANT)
    console.print(
        f"analytics: {summary['agents_with_goals']:,} agents, by status {summary['by_status']},"
        f" {summary['milestones_achieved']:,} milestones, {len(summary.get('stagnant', [])):,} stagnant,"
        f" {len(summary.get('at_risk', [])):,} at risk; buckets: "
        f"{len(system.events.buckets(TENANT, bucket='day'))} days,"
        f" {len(system.events.buckets(TENANT, type='ProgressRecorded', bucket='week'))} weeks"
    )
    figures += [
        Figure(
            "analytics_p50",
            f"analytics.system(tenant) p50 (extended={default_extended}), {len(defaults)} runs",
            pct(defaults, 0.5),
            " ms",
            200,
        ),
        Figure("analytics_p99", "analytics.system(tenant) p99", pct(defaults, 0.99), " ms", 200),
        Figure(
            "analytics_sliding_p50",
            f"analytics.system(tenant) a minute apart p50, {len(sliding)} runs",
            pct(sliding, 0.5),
            " ms",
            200,
        ),
        Figure(
            "analytics_sliding_p99",
            "analytics.system(tenant) a minute apart p99",
            pct(sliding, 0.99),
            " ms",
            200,
        ),
        Figure("analytics_warm_up", f"analytics warm-up at start ({system.analytics_warmth})", warm_s, " s"),
        Figure(
            "analytics_first", "analytics.system(tenant), first request after warm-up", first_ms, " ms", 200
        ),
        Figure("analytics_cold", "analytics.system(tenant), nothing remembered", cold_ms, " ms"),
    ]
    if other:
        figures += [
            Figure(
                "analytics_other_p50",
                f"  system(extended={not default_extended}) p50, {len(other)} runs",
                pct(other, 0.5),
                " ms",
            ),
            Figure(
                "analytics_other_p99",
                f"  system(extended={not default_extended}) p99",
                pct(other, 0.99),
                " ms",
            ),
        ]
    figures += [
        Figure("buckets_day_p50", f"events.buckets(day) p50, {len(day)} runs", pct(day, 0.5), " ms", 500),
        Figure("buckets_day_p99", "events.buckets(day) p99", pct(day, 0.99), " ms", 500),
        Figure(
            "buckets_week_p50",
            f"events.buckets(ProgressRecorded, week) p50, {len(week)} runs",
            pct(week, 0.5),
            " ms",
            500,
        ),
        Figure("buckets_week_p99", "events.buckets(ProgressRecorded, week) p99", pct(week, 0.99), " ms", 500),
    ]
    return figures


def sanity(system: System, args: argparse.Namespace) -> None:
    """The read models hold what the log holds (a cheap check that the figures measured work)."""
    with system.store.read() as tx:
        agents = tx.fetchone("SELECT COUNT(*) FROM goal_progress WHERE tenant = ?", (TENANT,))
        history = tx.fetchone(
            "SELECT COUNT(*) FROM event_facts WHERE tenant = ? AND type <> 'Registered'", (TENANT,)
        )
        facts = tx.fetchone("SELECT COUNT(*) FROM event_facts WHERE tenant = ?", (TENANT,))
    counts = (
        int(agents[0]) if agents else 0,
        int(history[0]) if history else 0,
        int(facts[0]) if facts else 0,
    )
    console.print(
        f"  read models: {counts[0]:,} goals, {counts[2]:,} event facts ({counts[1]:,} history entries)"
    )


def sealed_copy(system: System, sealed: System, end: int, page: int = 5000) -> float:
    """Copy the log of `system` into `sealed`'s empty log, each event sealed by its mapper:
    the same events at the same positions. Returns the seconds it took."""
    started = time.perf_counter()
    after = 0
    with Progress(*COLUMNS, console=console) as progress:
        task = progress.add_task("sealed copy of the log", total=end)
        while after < end:
            rows = system.goals.recorder.select_notifications(
                start=after, limit=page, inclusive_of_start=False
            )
            if not rows:
                break
            events = [system.goals.mapper.to_domain_event(r) for r in rows]
            sealed.goals.recorder.insert_events([sealed.goals.mapper.to_stored_event(e) for e in events])
            after = rows[-1].id
            progress.update(task, completed=after)
    return time.perf_counter() - started


def decode_cost(
    system: System, sealed: System, page_size: int, end: int, pages: int = 5
) -> dict[bool, float]:
    """Seconds per event of mapping stored events to domain events (what decryption adds to the
    read side, alone), on the same pages of each log, best of `pages`, without the garbage
    collector (whose pauses otherwise double some pages)."""
    rng = random.Random(2)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(pages):
        after = rng.randrange(0, max(1, end - page_size))
        for on, target in ((False, system), (True, sealed)):
            rows = target.goals.recorder.select_notifications(
                start=after, limit=page_size, inclusive_of_start=False
            )
            gc.disable()
            try:
                started = time.process_time()
                for row in rows:
                    target.goals.mapper.to_domain_event(row)
                best[on] = min(best[on], (time.process_time() - started) / max(len(rows), 1))
            finally:
                gc.enable()
    return best


def encryption_cost(system: System, args: argparse.Namespace, end: int, data_dir: str) -> list[Figure]:
    """Catch-up on the log as it is and on a sealed copy, four times each: the mean
    wall-clock rate of each, and the CPU this process spent per event (the runner's
    threads: reading, decrypting, decoding, folding), which the machine's other load moves
    far less than wall time."""
    name, url = create_database(args.database_url, "a2a_bench_proj_")
    sealed = None
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    try:
        sealed = build(url, f"{data_dir}/sealed", master_keys=base64.b64encode(os.urandom(32)).decode())
        copied_s = sealed_copy(system, sealed, end)
        # off on on off, on off off on: each run a little slower than the one before it here
        # (seen in every run), and this order gives both the same share of that drift.
        for on in (False, True, True, False, True, False, False, True):
            target = sealed if on else system
            reset_read_models(target)
            with Progress(*COLUMNS, console=console) as progress:
                started = time.process_time()
                caught = catch_up(target, args, progress, end, split=False)
                cpu[on].append((time.process_time() - started) / max(caught.events, 1))
            rates[on].append(caught.rate)
        mapping = decode_cost(system, sealed, args.page_size, end)
    finally:
        if sealed is not None:
            sealed.close()
        drop_database(args.database_url, name)
    off, on = statistics.mean(rates[False]), statistics.mean(rates[True])
    cpu_off, cpu_on = statistics.mean(cpu[False]), statistics.mean(cpu[True])
    load = f"{load} -> {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    cost = 1 - on / off if off else float("nan")
    cpu_cost = cpu_on / cpu_off - 1 if cpu_off else float("nan")
    console.print(
        f"sealed copy of {end:,} events in {copied_s:.1f}s; catch-up off"
        f" {', '.join(f'{r:,.0f}' for r in rates[False])} ev/s, on {', '.join(f'{r:,.0f}' for r in rates[True])}"
        f" ev/s; CPU per event off {', '.join(f'{c * 1e6:.0f}' for c in cpu[False])} µs,"
        f" on {', '.join(f'{c * 1e6:.0f}' for c in cpu[True])} µs"
    )
    print(
        f"encryption: catch-up mean of 4: off={off:.0f} ev/s on={on:.0f} ev/s cost={cost * 100:.1f}%"
        f" (target <= 10%); CPU per event off={cpu_off * 1e6:.1f}us on={cpu_on * 1e6:.1f}us"
        f" ({cpu_cost * 100:+.1f}%) load={load}"
    )
    print(
        f"encryption: stored event to domain event, same pages: off={mapping[False] * 1e6:.2f}us"
        f" on={mapping[True] * 1e6:.2f}us per event (+{(mapping[True] - mapping[False]) * 1e6:.2f}us)"
    )
    return [
        Figure("catch_up_sealed", "catch-up, ENCRYPTION=on (mean of 4)", on, "ev/s"),
        Figure("encryption_cost", "  cost of encryption on catch-up (wall)", cost * 100, "%", 10.0),
        Figure("encryption_cpu", "  CPU per event more with encryption", cpu_cost * 100, "%", 10.0),
    ]


def report(figures: list[Figure]) -> None:
    table = Table(title="projections bench")
    for column in ("figure", "value", "target", "verdict"):
        table.add_column(column)
    colours = {"PASS": "green", "MISS": "red", "info": "dim"}
    for f in figures:
        table.add_row(f.label, f.shown(), f.target_text(), f"[{colours[f.verdict]}]{f.verdict}[/]")
    console.print(table)
    parts = []
    for f in figures:
        if f.target is None:
            continue
        value = f"{f.value:,.0f} ev/s" if f.unit == "ev/s" else f"{f.value:.1f}{f.unit.strip()}"
        parts.append(f"{f.key}={value} (target {f.target_text()}) {f.verdict}")
    print("projections: " + " ".join(parts))
    missed = [f.key for f in figures if f.verdict == "MISS"]
    print(f"projections: {len(missed)} missed{': ' + ', '.join(missed) if missed else ''}")


if __name__ == "__main__":
    main()
