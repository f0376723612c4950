"""The audit log on PostgreSQL: events leafed per second, proof latency, and `audit verify` time.

Run from the repo root:

    .venv/bin/python ops/bench/audit.py [--events 100000] [--agents 2000] [--proofs 2000]
        [--database-url URL] [--page-size 5000]

It creates a fresh database `a2a_bench_audit_<random>` on the server named by --database-url
(default: $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres) and drops it
at the end. Phases:

  1. write: --agents agents set goals, then progress arrives through record_progress_batch
     (300 updates per transaction) until the log holds at least --events events.
  2. leaf: a ProjectionRunner with the audit_log projection alone catches up over the whole
     log (reading the stored rows as the live projection does): events/s.
  3. proofs: --proofs inclusion proofs of random positions against the current tree, as the
     API serves them (AuditProofs.inclusion: leaf row, the stored event read back, O(log n)
     subtree rows): p50/p99 in ms; and as many consistency proofs of random sizes.
  4. verify: the whole log recomputed and compared (what `a2a-goals audit verify` does).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from application.audit import Viewer  # noqa: E402
from application.goals import ProgressUpdate  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Objective  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import build_system  # noqa: E402
from interfaces.wiring.audit import audit_projection, audit_verifier  # noqa: E402
from projections.audit_log import AuditLogProjection  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

TENANT = "bench"
GOALS = GoalDefinition(
    purpose_statement="Benchmark the audit log",
    objectives=(Objective("speed", "Speed", weight=1.0), Objective("care", "Care", weight=1.0)),
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=5000)
    default_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database-url", default=default_url)
    args = parser.parse_args()

    name = f"a2a_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.database_url.rpartition('/')[0]}/{name}"
    data_dir = Path(f"/tmp/{name}")
    try:
        run(args, url, data_dir)
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace, url: str, data_dir: Path) -> None:
    settings = Settings(
        APP_ENV="test",
        DATABASE_URL=url,
        DATA_DIR=str(data_dir),
        RUN_PROJECTIONS_IN_PROCESS="false",
        ELASTICSEARCH_URL="",
    )
    system = build_system(settings)
    rng = random.Random(7)
    try:
        started = time.perf_counter()
        agents = [f"agent-{i}" for i in range(args.agents)]
        for agent in agents:
            system.goals.set_goals(TENANT, agent, GOALS, Meta(actor="bench"))
        while system.goals.log_position() < args.events:
            updates = [ProgressUpdate(rng.choice(agents), {"speed": rng.randint(1, 99)}) for _ in range(300)]
            system.goals.record_progress_batch(TENANT, updates, Meta(actor="bench"))
        events = system.goals.log_position()
        print(f"write: {events:,} events in {time.perf_counter() - started:.1f}s")

        projection = audit_projection(system.goals)
        applying = [0.0]
        apply = AuditLogProjection.apply

        def timed_apply(self: AuditLogProjection, tx: Any, events: Any) -> None:
            t = time.perf_counter()
            apply(self, tx, events)
            applying[0] += time.perf_counter() - t

        AuditLogProjection.apply = timed_apply  # type: ignore[method-assign]
        runner = ProjectionRunner(system.goals.read_log, system.store, [projection], page_size=args.page_size)
        with system.store.transaction() as tx:  # the System's runner set the table up: start empty
            tx.execute("DELETE FROM audit_leaves")
            tx.execute("DELETE FROM audit_nodes")
            tx.execute("UPDATE projection_tracking SET position = 0 WHERE name = 'audit_log'")
        started = time.perf_counter()
        leafed = runner.catch_up()
        seconds = time.perf_counter() - started
        runner.close()
        print(f"leaf: {leafed:,} events in {seconds:.1f}s = {leafed / seconds:,.0f} events/s leafed")
        # The log read and decoding are shared by every read model of a runner; this is the
        # audit log's own share (its read of the stored rows, hashing, its rows' COPY).
        print(f"  of which audit_log.apply: {applying[0]:.1f}s = {leafed / applying[0]:,.0f} events/s")

        size = system.audit.root()["tree_size"]
        positions = [p for (p,) in _positions(system)]
        timings = []
        for position in rng.choices(positions, k=args.proofs):
            t = time.perf_counter()
            system.audit.inclusion(position, Viewer(TENANT))
            timings.append((time.perf_counter() - t) * 1000)
        print(
            f"inclusion proofs at {size:,} leaves: p50 {statistics.median(timings):.2f} ms,"
            f" p99 {percentile(timings, 0.99):.2f} ms"
        )
        timings = []
        for _ in range(args.proofs // 4):
            first = rng.randint(1, size)
            t = time.perf_counter()
            system.audit.consistency(first, size)
            timings.append((time.perf_counter() - t) * 1000)
        print(
            f"consistency proofs: p50 {statistics.median(timings):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms"
        )

        started = time.perf_counter()
        result = audit_verifier(system.goals, system.store).verify()
        seconds = time.perf_counter() - started
        verdict = "OK" if result.first_bad is None else f"BAD at {result.first_bad.position}"
        print(
            f"verify: {result.events:,} events in {seconds:.1f}s = {result.events / seconds:,.0f} events/s ({verdict})"
        )
    finally:
        system.close()


def _positions(system: object) -> list[tuple[int]]:
    store = system.store  # type: ignore[attr-defined]
    with store.read() as reader:
        return [
            (int(row[0]),)
            for row in reader.fetchall("SELECT position FROM audit_leaves WHERE tenant = ?", (TENANT,))
        ]


if __name__ == "__main__":
    main()
