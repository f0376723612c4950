"""Retention's pruning: how fast a tenant's read-side detail goes, and how long each batch's
transaction lasts (what a concurrent writer might wait behind).

Run from the repo root:

    .venv/bin/python ops/bench/retention.py [--agents 200] [--progress 50] [--batch 5000]
        [--database-url URL]

--agents agents of one tenant each set goals and record --progress progress updates (events,
their facts and hourly rollup rows); the read models catch up, then the pruning runs as if 40
days had passed with a 30-day retention. Without --database-url the embedded default (SQLite
in a temporary directory); with it, use an empty PostgreSQL database. It prints the rows
deleted, rows/s, the batches and the longest batch transaction.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on sys.path, and its projections.py would shadow
# the `projections` package: it is taken off, and the repository put first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]
sys.path.insert(0, str(HERE.parent.parent))

from application.goals import ProgressUpdate  # noqa: E402
from application.ports import ReadStore, Tx  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Objective  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import build_system  # noqa: E402
from projections.retention import ReadSideRetention, RetentionPolicy  # noqa: E402


class TimedStore:
    """The read store, timing each transaction."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store
        self.durations: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        start = time.perf_counter()
        with self._store.transaction() as tx:
            yield tx
        self.durations.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--progress", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            APP_ENV="test",
            DATA_DIR=data_dir,
            DATABASE_URL=args.database_url,
            RUN_PROJECTIONS_IN_PROCESS="false",
            ANCHORING="false",
        )
        system = build_system(settings)
        try:
            tenant, meta = f"bench-{uuid.uuid4().hex[:8]}", Meta(actor="bench")
            goal = GoalDefinition("Prune me", (Objective("o1", "O1"),))
            for n in range(args.agents):
                system.goals.set_goals(tenant, f"a{n}", goal, meta)
                for step in range(args.progress):
                    update = ProgressUpdate(f"a{n}", {"o1": (step * 97 % 100) + 0.5})
                    system.goals.record_progress(tenant, update, meta)
            system.runner.catch_up()
            store = TimedStore(system.store)
            later = datetime.now(UTC) + timedelta(days=40)
            retention = ReadSideRetention(
                store,  # type: ignore[arg-type]
                RetentionPolicy(0, {tenant: 30}),
                batch=args.batch,
                clock=lambda: later,
            )
            start = time.perf_counter()
            pruned = retention.prune()
            elapsed = time.perf_counter() - start
        finally:
            system.close()
    total = sum(pruned.rows.values())
    store_kind = "postgres" if args.database_url else "sqlite"
    print(f"store={store_kind} batch={args.batch} rows={pruned.rows}")
    print(
        f"deleted {total} rows in {elapsed:.2f} s ({total / elapsed:,.0f} rows/s);"
        f" {len(store.durations)} transactions, longest {max(store.durations) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
