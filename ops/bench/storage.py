"""Bytes per stored event in PostgreSQL, for the capacity model of docs/scaling.md.

    .venv/bin/python ops/bench/storage.py [--agents 1000] [--polls 50] [--database-url URL]

On a fresh database `a2a_bench_storage_<random>` (dropped at the end) it writes what the
collector writes for auto-updated agents: --agents agents set goals of three objectives, two
of them fed by KPIs, then --polls rounds of one progress update per agent (KPI values moving
towards their targets, the milestones they cross saved with them) through the system's bulk
write path, as deployed (snapshots every SNAPSHOT_INTERVAL events). The projector then
catches up with every read model; after VACUUM ANALYZE it prints the size of each table
(indexes and TOAST included) and bytes per event of the log, of the facts, and of the whole
database.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from application.goals import ProgressUpdate  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Kpi, Objective  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import System, build_system  # noqa: E402
from ops.bench.scratch import create_database, drop_database  # noqa: E402
from projections.status import projection_status  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TENANT = "bench"
BATCH = 500
SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY 2 DESC
"""


def definition(agent: str) -> GoalDefinition:
    return GoalDefinition(
        purpose_statement=f"{agent} answers its team's questions",
        objectives=(
            Objective(id="quality", title="Answer well", weight=2.0),
            Objective(
                id="latency",
                title="Answer fast",
                weight=1.0,
                kpi=Kpi("p95_latency_ms", 200, 800, "ms", "decrease"),
            ),
            Objective(
                id="volume", title="Answer many", weight=1.0, kpi=Kpi("requests_per_day", 5000, 1000, "req")
            ),
        ),
        success_criteria=("every objective at 100%",),
    )


def write(system: System, agents: int, polls: int, rng: random.Random) -> None:
    meta = Meta(actor="bench-storage", request_id="setup")
    ids = [f"agent-{i:06d}" for i in range(agents)]
    for agent in ids:
        system.goals.set_goals(TENANT, agent, definition(agent), meta)
    state = {agent: [0.0, 800.0, 1000.0] for agent in ids}
    for poll in range(polls):
        updates = []
        for agent in ids:
            values = state[agent]
            values[0] = min(100.0, values[0] + rng.uniform(0, 4))
            values[1] = max(200.0, values[1] - rng.uniform(0, 25))
            values[2] = min(5000.0, values[2] + rng.uniform(0, 160))
            updates.append(
                ProgressUpdate(
                    agent,
                    objective_progress={"quality": round(values[0], 2)},
                    kpi_values={"latency": round(values[1], 1), "volume": round(values[2])},
                    observed_at=datetime.now(UTC),
                )
            )
        for start in range(0, len(updates), BATCH):
            system.goals.record_progress_batch(
                TENANT, updates[start : start + BATCH], Meta(actor="bench-storage", request_id=f"poll-{poll}")
            )


def catch_up(system: System) -> None:
    system.start_projections()
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        status = projection_status(system.runner, system.goals.read_log, system.goals.log_position)
        if all(s["lag_events"] == 0 for s in status):
            return
        time.sleep(1)
    raise SystemExit("the read models did not catch up in 30 minutes")


def report(url: str, events: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        sizes = conn.execute(SIZES).fetchall()
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert total is not None
    print(f"{events:,} events in the log\n")
    print(f"{'table':<40} {'bytes':>14} {'bytes/event':>12}")
    for name, size in sizes:
        if size >= 64 * 1024:
            print(f"{name:<40} {size:>14,} {size / events:>12.0f}")
    groups = {  # label -> prefix of its tables' names
        "log (a2a_events, a2a_snapshots)": "a2a_",
        "event_facts (all monthly partitions)": "event_facts_2",
        "audit tree (audit_leaves, audit_nodes)": "audit_",
    }
    print()
    for label, prefix in groups.items():
        print(
            f"{label}: {sum(size for name, size in sizes if name.startswith(prefix)) / events:.0f} bytes/event"
        )
    print(f"whole database: {total[0] / events:.0f} bytes/event ({total[0]:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=50)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    name, url = create_database(args.database_url, "a2a_bench_storage_")
    try:
        with tempfile.TemporaryDirectory() as data:
            settings = Settings(
                APP_ENV="test", DATABASE_URL=url, DATA_DIR=data, RUN_PROJECTIONS_IN_PROCESS="false"
            )
            system = build_system(settings)
            try:
                started = time.perf_counter()
                write(system, args.agents, args.polls, random.Random(args.seed))
                print(f"written in {time.perf_counter() - started:.1f} s; projecting")
                catch_up(system)
                events = system.goals.log_position()
            finally:
                system.close()
        report(url, events)
    finally:
        drop_database(args.database_url, name)


if __name__ == "__main__":
    main()
