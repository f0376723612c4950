"""Retention of read-side detail: a tenant's facts, hourly rollup and finished webhook
deliveries older than its RETENTION_DAYS are pruned, another tenant's are kept, and the event
log (the audit record) keeps every event, so `as_of` replay still answers.

Time passes through the retention's clock: the events are recorded now and the pruning runs
as if some days had gone by."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.goals import ProgressUpdate
from application.ports import ReadStore, Tx
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.workers.worker import InProcessJobs
from projections.retention import ReadSideRetention, RetentionPolicy
from tests.integration.support import meta, one_objective, rows, running_system, tenant_events, wait_until

HOOK = "http://127.0.0.1:9/hook"  # nothing listens: each delivery fails at once, for good
SETTINGS: dict[str, object] = {
    "OUTBOUND_ALLOW_NETS": "127.0.0.1/32",
    "WEBHOOK_MAX_ATTEMPTS": "1",
    "ANCHORING": "false",
}


def later(days: float) -> Callable[[], datetime]:
    moment = datetime.now(UTC) + timedelta(days=days)
    return lambda: moment


def count(store: ReadStore, table: str, tenant: str) -> int:
    if table == "webhook_attempts":
        sql = (
            "SELECT COUNT(*) FROM webhook_attempts WHERE delivery_id IN"
            " (SELECT delivery_id FROM webhook_deliveries WHERE tenant = ?)"
        )
    else:
        sql = f"SELECT COUNT(*) FROM {table} WHERE tenant = ?"
    return int(rows(store, sql, (tenant,))[0][0])


def detail(store: ReadStore, tenant: str) -> dict[str, int]:
    return {
        table: count(store, table, tenant)
        for table in ("event_facts", "event_facts_hourly", "webhook_deliveries", "webhook_attempts")
    }


def busy_tenant(system: System, tenant: str, progress: int = 3) -> None:
    """A subscription, an agent with goals and some progress, and its deliveries tried (once,
    failing for good: finished)."""
    sub = system.webhooks.subscriptions.subscribe(tenant, HOOK, ["goals_set"], meta()).subscription_id
    system.goals.set_goals(tenant, "a1", one_objective(), meta())
    for step in range(progress):
        system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 8 * (step + 1)}), meta())
    system.runner.catch_up()
    system.webhooks.delivery.deliver_lane(sub, "a1")


@pytest.fixture
def two_tenants() -> tuple[str, str]:
    return f"kept-less-{uuid.uuid4().hex[:8]}", f"kept-all-{uuid.uuid4().hex[:8]}"


def test_detail_past_the_window_goes_for_the_tenant_with_retention_only(
    make_settings: Callable[..., Settings], two_tenants: tuple[str, str]
) -> None:
    short, forever = two_tenants
    with running_system(make_settings, **SETTINGS) as system:
        busy_tenant(system, short)
        busy_tenant(system, forever)
        recorded = datetime.now(UTC)
        before = {t: detail(system.store, t) for t in two_tenants}
        assert all(n > 0 for n in before[short].values()), before
        policy = RetentionPolicy(0, {short: 30})

        # ten days on: all of it is inside the window
        ReadSideRetention(system.store, policy, clock=later(10)).prune()
        assert detail(system.store, short) == before[short]

        # forty days on: the short tenant's detail is gone, the other's is all there
        pruned = ReadSideRetention(system.store, policy, clock=later(40)).prune()
        assert detail(system.store, short) == dict.fromkeys(before[short], 0)
        assert detail(system.store, forever) == before[forever]
        assert pruned.rows == before[short]
        assert system.history.history(short, "a1", after=0, limit=10).items == []
        # current state stays: the goal's progress
        assert system.progress.goal_json(short, "a1") is not None

        # the log still holds every event, and replays the goal as it was
        logged = tenant_events(system, short, 0)
        assert len(logged) == before[short]["event_facts"]  # one fact was kept per event
        assert system.goals.goals_at(short, "a1", as_of=recorded).version == len(logged)

        # idempotent: nothing more to prune
        assert not any(ReadSideRetention(system.store, policy, clock=later(40)).prune().rows.values())

        # a rebuild replays the log and brings the facts back; the next run prunes them again
        system.rebuilder.rebuild(["event_facts"])
        assert count(system.store, "event_facts", short) == before[short]["event_facts"]
        ReadSideRetention(system.store, policy, clock=later(40)).prune()
        assert count(system.store, "event_facts", short) == 0
        assert count(system.store, "event_facts", forever) == before[forever]["event_facts"]


class DeletesPerTransaction:
    """The read store under test, noting how many facts of `tenant` each transaction removed."""

    def __init__(self, store: ReadStore, tenant: str) -> None:
        self._store = store
        self._tenant = tenant
        self.removed: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        before = count(self._store, "event_facts", self._tenant)
        with self._store.transaction() as tx:
            yield tx
        self.removed.append(before - count(self._store, "event_facts", self._tenant))


def test_pruning_deletes_a_bounded_batch_per_transaction(
    make_settings: Callable[..., Settings],
    two_tenants: tuple[str, str],
    store_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    short, _ = two_tenants
    # A retention of every tenant's rows: on PostgreSQL, in a database of its own, or the other
    # tests' rows would share its batches.
    own = {"DATABASE_URL": request.getfixturevalue("own_pg_url")} if store_kind == "postgres" else {}
    with running_system(make_settings, **SETTINGS, **own) as system:
        busy_tenant(system, short, progress=11)
        facts = count(system.store, "event_facts", short)
        assert facts > 10
        store = DeletesPerTransaction(system.store, short)
        retention = ReadSideRetention(store, RetentionPolicy(30), batch=5, clock=later(40))  # type: ignore[arg-type]
        retention.prune()
        assert count(system.store, "event_facts", short) == 0
        facts_batches = [n for n in store.removed if n]
        assert facts_batches == [5] * (facts // 5) + ([facts % 5] if facts % 5 else [])


def test_the_scheduled_job_prunes_through_the_in_process_jobs(
    make_settings: Callable[..., Settings],
    two_tenants: tuple[str, str],
    store_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    short, forever = two_tenants
    # The default retention covers every tenant of the store: a database of this test's own.
    own = {"DATABASE_URL": request.getfixturevalue("own_pg_url")} if store_kind == "postgres" else {}
    settings = make_settings(
        **own,
        RUN_PROJECTIONS_IN_PROCESS="false",
        PROJECTION_WATCH_S="0",
        STAGNATION_CHECK_S="0",
        WEBHOOK_DISPATCH_S="0",
        REACHABILITY_CHECK_S="0",
        RETENTION_DAYS="30",
        RETENTION_DAYS_BY_TENANT=f"{forever}=0",
        RETENTION_CHECK_S="3600",
        **SETTINGS,
    )
    system = build_system(settings)
    try:
        busy_tenant(system, short)
        busy_tenant(system, forever)
        kept = detail(system.store, forever)
        logged = len(tenant_events(system, short, 0))
        system.retention = ReadSideRetention(system.store, system.retention.policy, clock=later(40))
        jobs = InProcessJobs(system)
        jobs.start()
        try:
            wait_until(lambda: not any(detail(system.store, short).values()), 30.0, "the scheduled pruning")
        finally:
            jobs.stop()
        assert detail(system.store, forever) == kept
        assert len(tenant_events(system, short, 0)) == logged
    finally:
        system.close()
