"""The metrics collector's moving parts: how it is built, the sweep that sends due polls,
and what the two actors (`collect_metrics`, `check_stagnation`) do and measure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from prometheus_client import Counter, Gauge, Histogram

from application.collection import SKIPPED, STATUSES, CounterReadings, MetricsCollection, Stall
from application.collection_schedule import CollectionSchedule
from application.goals import GoalsApp
from application.ports import JobsUnavailable, ReadStore
from infrastructure.connections import ConnectionLimits
from infrastructure.counter_readings import InProcessCounterReadings, RedisCounterReadings
from infrastructure.jobs import REDIS_TIMEOUT_S, Jobs
from infrastructure.outbound import OutboundClient, OutboundRefused
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from infrastructure.scraping import MetricsScraper
from infrastructure.settings import Settings
from projections.collection_targets import CollectionTargetQueries

if TYPE_CHECKING:
    from interfaces.bootstrap import System

log = logging.getLogger(__name__)
COLLECT_METRICS = "collect_metrics"
CHECK_STAGNATION = "check_stagnation"
COLLECTIONS = Counter(
    "a2a_goals_metrics_collections", "Polls of agents' metrics, by how they ended.", ["status"]
)
for _status in STATUSES:
    COLLECTIONS.labels(_status)
LAG = Histogram(
    "a2a_goals_collection_lag_seconds",
    "From a poll falling due to its outcome being recorded in the log.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
)
STAGNANT = Gauge(
    "a2a_goals_stagnant_goals",
    "Active goals without progress for STAGNATION_HOURS.",
    multiprocess_mode="mostrecent",
)
FAILING = Gauge(
    "a2a_goals_collection_failing_agents",
    "Agents whose metrics collection is failing.",
    multiprocess_mode="mostrecent",
)


def collect_key(tenant: str, agent_id: str) -> str:
    """One poll of an agent at a time."""
    return f"collect:{tenant}:{agent_id}"


def build_collection(settings: Settings, goals: GoalsApp, outbound: OutboundClient) -> MetricsCollection:
    scraper = MetricsScraper(outbound, retries=settings.collect_retries, backoff_s=settings.collect_backoff_s)
    readings: CounterReadings = InProcessCounterReadings()
    if settings.job_keys_url:
        client = redis.Redis.from_url(
            settings.job_keys_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        readings = RedisCounterReadings(client, settings.queue_prefix)
    return MetricsCollection(
        goals, scraper, readings, _url_check(outbound), min_delta=settings.auto_update_min_delta
    )


def _url_check(outbound: OutboundClient) -> Callable[[str], str | None]:
    def check(url: str) -> str | None:
        try:
            outbound.check_url(url)
        except OutboundRefused as refused:
            return f"refused by the outbound guard: {refused.reason}"
        return None

    return check


def collect_metrics(system: System, tenant: str, agent_id: str, due_at: float) -> None:
    """One poll (the actor's body): counted by status, and its lag measured."""
    status = system.collection.collect(tenant, agent_id)
    if status != SKIPPED:
        COLLECTIONS.labels(status).inc()
        LAG.observe(max(0.0, time.time() - due_at))


def check_stagnation(system: System) -> None:
    """Record each stall of the goals the analytics find stagnant, once; set both gauges."""
    hours = system.settings.stagnation_hours
    stalls: list[Stall] = []
    stagnant = 0
    for tenant in system.collection_targets.tenants_with_active_goals():
        found = system.analytics.system(tenant, stagnation_hours=hours)["stagnant"]
        stagnant += len(found)
        marks = system.collection_targets.stagnant_marks(tenant)
        stalls.extend(
            Stall(tenant, item["agent_id"])
            for item in found
            if marks.get(item["agent_id"]) != item["last_progress_at"]
        )
    system.collection.check_stagnation(stalls, hours)
    STAGNANT.set(stagnant)
    FAILING.set(system.collection_targets.failing_count())


class CollectionSweep:
    """Every COLLECT_SWEEP_S, sends the polls that fell due (in a thread of its own)."""

    def __init__(self, jobs: Jobs, store: ReadStore, every_s: float, *, own_store: bool = False) -> None:
        self._jobs = jobs
        self._store = store
        self._own_store = own_store
        self._every_s = every_s
        targets = CollectionTargetQueries(store)
        self.schedule = CollectionSchedule(targets.changed_since, self._send)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _send(self, tenant: str, agent_id: str, due_at: float) -> bool:
        kwargs = {"tenant": tenant, "agent_id": agent_id, "due_at": due_at}
        return self._jobs.send_once(COLLECT_METRICS, kwargs, key=collect_key(tenant, agent_id))

    def start(self) -> None:
        if self._every_s > 0:
            self._thread = threading.Thread(target=self._run, name="collection-sweep", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        if self._own_store:
            self._store.close()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.schedule.sweep(time.time())
                failing = False
            except JobsUnavailable as error:
                log.warning("due polls not sent: %s", error)
            except Exception as error:
                # Logged once per outage, not every second: before the API process has made
                # the read model's table, say, or while the database is away.
                if not failing:
                    log.warning(
                        "the collection sweep failed (%s: %s); trying again", type(error).__name__, error
                    )
                    log.debug("the collection sweep failed", exc_info=True)
                failing = True
            self._stop.wait(max(0.0, self._every_s - (time.monotonic() - started)))


def scheduler_sweep(settings: Settings, jobs: Jobs) -> CollectionSweep:
    """The sweep of the `a2a-goals scheduler` process, reading the read model on its own."""
    store: ReadStore
    if settings.is_postgres:
        limits = ConnectionLimits(settings.db_pool_timeout_s, settings.db_statement_timeout_s)
        store = PostgresReadStore(settings.database_url, pool_size=1, limits=limits)
    else:
        store = SQLiteReadStore(settings.read_models_path)
    return CollectionSweep(jobs, store, settings.collect_sweep_s, own_store=True)
