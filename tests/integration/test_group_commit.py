"""The PostgreSQL recorder. Group commit: saves that queue behind a commit in flight are
committed together, each keeps exactly its own events and positions, and a conflict fails
only the save that conflicts. The runner's binary page read returns what the library's
notification select returns."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from prometheus_client import REGISTRY

from application.goals import ProgressUpdate
from infrastructure.eventstore import OrderedInsertRecorder
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.integration.support import aggregate_events, fresh_settings, meta, one_objective, wait_until

WRITERS = 12


@pytest.fixture
def pg_system(pg_url: str, tmp_path: Path) -> Iterator[System]:
    """A system on a database of its own: the conflict test writes events no other test reads."""
    shared = Settings(
        APP_ENV="test", DATA_DIR=str(tmp_path), DATABASE_URL=pg_url, RUN_PROJECTIONS_IN_PROCESS="false"
    )
    with fresh_settings(shared, tmp_path) as settings:
        built = build_system(settings)
        try:
            yield built
        finally:
            built.close()


def _recorder(system: System) -> OrderedInsertRecorder:
    recorder = system.goals.recorder
    assert isinstance(recorder, OrderedInsertRecorder)
    return recorder


class TableLock:
    """Holds the events table's EXCLUSIVE lock from another connection, so saves queue."""

    def __init__(self, url: str, recorder: OrderedInsertRecorder) -> None:
        self._conn = psycopg.connect(url)
        table = psycopg.sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
        self._conn.execute(psycopg.sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))

    def release(self) -> None:
        self._conn.commit()
        self._conn.close()


def test_queued_saves_commit_together_each_with_its_own_events(pg_system: System, tenant: str) -> None:
    goals = pg_system.goals
    agents = [f"a{i}" for i in range(WRITERS)]
    for agent in agents:
        goals.set_goals(tenant, agent, one_objective(), meta())
    group = _recorder(pg_system)._group
    results: dict[str, object] = {}

    def write(agent: str, value: float) -> None:
        try:
            results[agent] = goals.record_progress(tenant, ProgressUpdate(agent, {"o1": value}), meta(agent))
        except Exception as error:  # reported by the assertion below
            results[agent] = error

    groups_before, saves_before = _group_metrics()
    lock = TableLock(pg_system.settings.database_url, _recorder(pg_system))
    threads = [threading.Thread(target=write, args=(a, 1.0 + i)) for i, a in enumerate(agents)]
    for t in threads:
        t.start()
    # One save is inside the database, waiting on the lock; every other one queued behind it.
    wait_until(lambda: group.queued == WRITERS - 1, 30, "the saves to queue")
    before = pg_system.goals.log_position()
    lock.release()
    for t in threads:
        t.join(30)

    written = {agent: result for agent, result in results.items() if not isinstance(result, Exception)}
    assert len(written) == WRITERS, results
    positions = sorted(r.position for r in written.values())  # type: ignore[attr-defined]
    assert positions == list(range(before + 1, before + WRITERS + 1))
    for i, agent in enumerate(agents):
        events = aggregate_events(pg_system, tenant, agent)
        last = events[-1]
        # The position the command answered is its own event's, with its own value and actor.
        assert last.objective_progress == {"o1": 1.0 + i}  # type: ignore[attr-defined]
        assert last.actor == agent
        answer = written[agent]
        assert answer.first.version == last.originator_version  # type: ignore[attr-defined]
        assert goals.recorder.select_notifications(answer.position, 1)[0].originator_id == last.originator_id  # type: ignore[attr-defined]
    # The first save went alone; the eleven queued behind it went in one transaction.
    groups_after, saves_after = _group_metrics()
    assert (groups_after - groups_before, saves_after - saves_before) == (2, WRITERS)


def _group_metrics() -> tuple[float, float]:
    count = REGISTRY.get_sample_value("a2a_commit_group_saves_count")
    total = REGISTRY.get_sample_value("a2a_commit_group_saves_sum")
    return count or 0.0, total or 0.0


def test_a_conflict_in_a_group_fails_only_the_conflicting_save(pg_system: System) -> None:
    recorder = _recorder(pg_system)
    group = recorder._group
    one, two = uuid.uuid4(), uuid.uuid4()

    def event(originator: uuid.UUID, version: int) -> StoredEvent:
        return StoredEvent(originator_id=originator, originator_version=version, topic="t:T", state=b"{}")

    outcomes: dict[str, object] = {}

    def save(name: str, events: list[StoredEvent]) -> None:
        try:
            outcomes[name] = recorder.insert_events(events)
        except Exception as error:
            outcomes[name] = error

    lock = TableLock(pg_system.settings.database_url, recorder)
    first = threading.Thread(target=save, args=("first", [event(one, 1)]))
    first.start()
    wait_until(
        lambda: pg_system.goals.recorder is recorder and _blocked(pg_system.settings.database_url) >= 1,
        30,
        "the first save to block",
    )
    racers = [
        threading.Thread(target=save, args=("ours", [event(two, 1), event(two, 2)])),
        threading.Thread(target=save, args=("duplicate", [event(one, 1)])),
        threading.Thread(target=save, args=("after", [event(two, 3)])),
    ]
    for queued, t in enumerate(racers, start=1):
        t.start()
        wait_until(lambda n=queued: group.queued >= n, 30, "the save to queue")  # type: ignore[misc]
    lock.release()
    for t in [first, *racers]:
        t.join(30)

    assert isinstance(outcomes["duplicate"], IntegrityError)
    ids = {name: outcomes[name] for name in ("first", "ours", "after")}
    assert all(isinstance(v, list) for v in ids.values()), outcomes
    assert len(ids["ours"]) == 2 and len(ids["first"]) == 1 and len(ids["after"]) == 1  # type: ignore[arg-type]
    stored = {
        (n.originator_id, n.originator_version): n.id
        for n in recorder.select_notifications(0, 100)
        if n.originator_id in (one, two)
    }
    assert stored == {
        (one, 1): ids["first"][0],  # type: ignore[index]
        (two, 1): ids["ours"][0],  # type: ignore[index]
        (two, 2): ids["ours"][1],  # type: ignore[index]
        (two, 3): ids["after"][0],  # type: ignore[index]
    }


def _blocked(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def test_the_runners_binary_page_read_returns_what_select_notifications_returns(
    pg_system: System, tenant: str
) -> None:
    for agent in ("a1", "a2", "a3"):
        pg_system.goals.set_goals(tenant, agent, one_objective(), meta())
    recorder = _recorder(pg_system)
    end = pg_system.goals.log_position()
    for after, limit in ((0, 100), (1, 2), (end - 1, 5), (end, 5)):
        assert recorder.select_page(after, limit) == recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
