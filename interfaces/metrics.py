"""What `/metrics` exposes besides the counters each module keeps: the write side (events
appended by class, command latency), the database pools in use, and, when several server
processes answer, every process's counts (prometheus-client's multiprocess mode).

Multiprocess mode is on when PROMETHEUS_MULTIPROC_DIR is set before prometheus_client is
first imported (`a2a-goals serve --workers N` sets it for its workers); each process then
writes its values to files there, and a scrape, whichever process answers it, reads them all.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_asgi_app,
    multiprocess,
)
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from interfaces.bootstrap import System

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# How often a process of several refreshes its pool gauges (each scrape reads the files).
POOL_REFRESH_S = 5.0

EVENTS_APPENDED = Counter(
    "a2a_goals_events_appended_total", "Events appended to the log, by event class.", ["type"]
)
COMMAND_DURATION = Histogram(
    "a2a_goals_command_duration_seconds",
    "Time to run a command (load, decide, save, retries), by aggregate class.",
    ["aggregate"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DB_POOL = Gauge(
    "a2a_db_pool_connections",
    "PostgreSQL pool connections, by pool (event_store, read_store) and state (in_use, idle, max).",
    ["pool", "state"],
    multiprocess_mode="livesum",  # summed over the server processes alive
)


def metrics_dir(given: str | None) -> Path:
    """The directory the server processes of one `serve` write their values to: `given`
    (PROMETHEUS_MULTIPROC_DIR), emptied of an earlier run's files, or a new one."""
    if not given:
        return Path(tempfile.mkdtemp(prefix="a2a-metrics-"))
    path = Path(given)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR) or None


def count_events(types: Sequence[str]) -> None:
    for name in types:
        EVENTS_APPENDED.labels(name).inc()


def observe_command(aggregate: str, seconds: float) -> None:
    COMMAND_DURATION.labels(aggregate).observe(seconds)


def refresh_pools(system: System) -> None:
    """Set the pool gauges from psycopg_pool's own figures (no I/O)."""
    pools: dict[str, Any] = {}
    if system.settings.is_postgres:
        pools["read_store"] = getattr(system.store, "pool_stats", dict)()
        datastore = getattr(system.goals.recorder, "datastore", None)
        if datastore is not None and hasattr(datastore, "pool"):
            pools["event_store"] = datastore.pool.get_stats()
    for pool, stats in pools.items():
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        DB_POOL.labels(pool, "in_use").set(max(0, size - idle))
        DB_POOL.labels(pool, "idle").set(idle)
        DB_POOL.labels(pool, "max").set(stats.get("pool_max", 0))


class PoolWatch:
    """Refreshes the pool gauges every POOL_REFRESH_S in a process of several (a scrape is
    answered by one of them, and reads what each wrote last)."""

    def __init__(self, system: System) -> None:
        self._system = system
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pool-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(POOL_REFRESH_S):
            refresh_pools(self._system)


def metrics_app(system_of: Any) -> ASGIApp:
    """The /metrics endpoint; `system_of()` is the System (or None before start-up)."""
    registry: CollectorRegistry = REGISTRY
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    exposition = make_asgi_app(registry)

    async def metrics(scope: Scope, receive: Receive, send: Send) -> None:
        if (system := system_of()) is not None:
            refresh_pools(system)
        await exposition(scope, receive, send)

    return metrics


def process_exited() -> None:
    """In multiprocess mode: this process's live gauges stop counting."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
