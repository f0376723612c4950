"""Optimistic concurrency: stale If-Match is refused, and concurrent writers never lose or
double an update: every call either succeeds (and is recorded once) or says it failed."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from application.errors import ConcurrencyConflict, GoalsNotFound, VersionMismatch
from application.goals import ProgressUpdate
from application.preconditions import IfMatch
from application.results import CommandResult
from domain.errors import GoalNotActive, TransitionRefused
from domain.goals import AgentGoals
from infrastructure.settings import Settings
from tests.integration.support import aggregate_events, meta, one_objective, running_system

WRITERS = 50


def test_stale_expected_version_is_refused(make_settings: Callable[..., Settings], tenant: str) -> None:
    with running_system(make_settings) as system:
        created = system.goals.set_goals(tenant, "a1", one_objective(), meta(), expected_version=0)
        assert created.first.version == 2
        updated = system.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 10}), meta(), expected_version=2
        )
        logged = system.goals.log_position()

        with pytest.raises(VersionMismatch) as stale:
            system.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 20}), meta(), expected_version=2)
        assert (stale.value.expected, stale.value.actual) == ("2", updated.first.version)
        with pytest.raises(VersionMismatch):
            system.goals.change_status(tenant, "a1", "paused", "x", meta(), expected_version=99)
        with pytest.raises(VersionMismatch):
            system.goals.set_goals(tenant, "a1", one_objective(), meta(), expected_version=0)
        with pytest.raises(GoalsNotFound):
            system.goals.record_progress(
                tenant, ProgressUpdate("nope", {"o1": 1}), meta(), expected_version=1
            )
        assert system.goals.log_position() == logged

        current = system.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 20}), meta(), expected_version=updated.first.version
        )
        assert current.first.version > updated.first.version


def test_two_systems_on_one_store_see_each_others_writes(
    make_settings: Callable[..., Settings], tenant: str
) -> None:
    """Like two API replicas: each one's aggregate cache must not hide the other's writes."""
    with running_system(make_settings) as one, running_system(make_settings) as two:
        created = one.goals.set_goals(tenant, "a1", one_objective(), meta("one"))
        assert one.goals.goals_at(tenant, "a1").version == created.first.version  # now cached in `one`
        moved = two.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 30}), meta("two"), expected_version=created.first.version
        )
        assert one.goals.goals_at(tenant, "a1").objective_progress == {"o1": 30.0}
        again = one.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 60}), meta("one"), expected_version=moved.first.version
        )
        with pytest.raises(VersionMismatch):
            two.goals.record_progress(
                tenant, ProgressUpdate("a1", {"o1": 70}), meta("two"), expected_version=moved.first.version
            )
        assert two.goals.goals_at(tenant, "a1").version == again.first.version
        assert two.goals.goals_at(tenant, "a1").update_count == 2


def test_a_replica_with_a_stale_cache_writes_on_what_the_log_holds(
    make_settings: Callable[..., Settings], tenant: str
) -> None:
    """Commands trust the cached aggregate; when another replica wrote in between, the save
    conflicts, the stale copy is dropped and the command runs again on the log's state."""
    with running_system(make_settings) as one, running_system(make_settings) as two:
        one.goals.set_goals(tenant, "a1", one_objective(), meta("one"))
        # Progress stays under the first milestone (25), so every update is exactly one event.
        one.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 5}), meta("one"))  # cached in one
        by_two = two.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 10}), meta("two"))

        # No If-Match: one's cached copy is a version behind; the write still lands after two's.
        by_one = one.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 15}), meta("one"))
        assert by_one.first.version == by_two.first.version + 1
        # If-Match with the version the log holds is accepted, though one's cache was behind.
        by_two_again = two.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 20}), meta("two"))
        accepted = one.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 24}), meta("one"), expected_version=by_two_again.first.version
        )
        assert accepted.first.version == by_two_again.first.version + 1

        recorded = [
            (e.actor, e.objective_progress["o1"])
            for e in aggregate_events(one, tenant, "a1")
            if isinstance(e, AgentGoals.ProgressRecorded)
        ]
        assert recorded == [("one", 5.0), ("two", 10.0), ("one", 15.0), ("two", 20.0), ("one", 24.0)]
        assert two.goals.goals_at(tenant, "a1").objective_progress == {"o1": 24.0}


def test_a_replica_whose_cache_says_paused_decides_on_the_log_before_refusing(
    make_settings: Callable[..., Settings], tenant: str
) -> None:
    """A refused command saves nothing, so no version check would ever correct a stale copy:
    a replica that cached "paused" refused progress (and "pause") forever after another
    replica resumed the goal. A refusal is now only given on what the log holds."""
    with running_system(make_settings) as one, running_system(make_settings) as two:
        one.goals.set_goals(tenant, "a1", one_objective(), meta("one"))
        one.goals.change_status(tenant, "a1", "paused", "night", meta("one"))  # cached in one: paused
        two.goals.change_status(tenant, "a1", "active", "morning", meta("two"))

        recorded = one.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 10}), meta("one"))
        paused = one.goals.change_status(tenant, "a1", "paused", "again", meta("one"))
        assert paused.first.version == recorded.first.version + 1
        # What the log holds still refuses what the rules refuse.
        with pytest.raises(GoalNotActive):
            one.goals.record_progress(tenant, ProgressUpdate("a1", {"o1": 20}), meta("one"))
        with pytest.raises(TransitionRefused):
            two.goals.change_status(tenant, "a1", "paused", "twice", meta("two"))
        assert two.goals.goals_at(tenant, "a1").status == "paused"


def test_if_match_any_version_and_lists_of_tags(make_settings: Callable[..., Settings], tenant: str) -> None:
    """RFC 9110 If-Match: `*` matches any existing version (never a missing one), a list
    matches if one of its strong tags is current, weak tags never match."""
    with running_system(make_settings) as system:
        with pytest.raises(VersionMismatch):
            system.goals.set_goals(tenant, "a1", one_objective(), meta(), expected_version=IfMatch(any_version=True))
        created = system.goals.set_goals(tenant, "a1", one_objective(), meta(), expected_version=IfMatch.version(0))
        version = created.first.version
        anyway = system.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 1}), meta(), expected_version=IfMatch(any_version=True)
        )
        assert anyway.first.version == version + 1
        listed = system.goals.record_progress(
            tenant, ProgressUpdate("a1", {"o1": 2}), meta(), expected_version=IfMatch(frozenset({1, version + 1}))
        )
        assert listed.first.version == version + 2
        with pytest.raises(VersionMismatch):
            system.goals.record_progress(
                tenant, ProgressUpdate("a1", {"o1": 3}), meta(), expected_version=IfMatch(frozenset())
            )


def _race(
    make_settings: Callable[..., Settings], tenant: str, retries: int | None, *, if_match: bool
) -> tuple[list[tuple[float, CommandResult]], list[Exception]]:
    """50 threads each record one distinct progress value on the same goal."""
    overrides: dict[str, object] = {} if retries is None else {"COMMAND_RETRIES": retries}
    with running_system(make_settings, **overrides) as system:
        system.goals.set_goals(tenant, "hot", one_objective(), meta())
        start = threading.Barrier(WRITERS)

        def write(i: int) -> tuple[float, CommandResult | Exception]:
            value = i + 0.5  # distinct, so each recorded update names its writer
            start.wait()
            expected = system.goals.goals_at(tenant, "hot").version if if_match else None
            try:
                result = system.goals.record_progress(
                    tenant, ProgressUpdate("hot", {"o1": value}), meta(f"w{i}"), expected_version=expected
                )
            except (ConcurrencyConflict, VersionMismatch) as refused:
                return value, refused
            return value, result

        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            outcomes = list(pool.map(write, range(WRITERS)))

        successes = [(v, r) for v, r in outcomes if isinstance(r, CommandResult)]
        failures = [r for _, r in outcomes if isinstance(r, Exception)]
        assert len(successes) + len(failures) == WRITERS

        # the log holds exactly the successful updates: none lost, none doubled
        recorded = [
            e.objective_progress["o1"]
            for e in aggregate_events(system, tenant, "hot")
            if isinstance(e, AgentGoals.ProgressRecorded)
        ]
        assert Counter(recorded) == Counter(v for v, _ in successes)
        versions = [r.first.version for _, r in successes]
        assert len(set(versions)) == len(versions)
        positions = [r.position for _, r in successes]
        assert len(set(positions)) == len(positions)

        goals = system.goals.goals_at(tenant, "hot")
        assert goals.update_count == len(successes)
        last_value = max(successes, key=lambda s: s[1].position)[0]
        assert goals.objective_progress == {"o1": last_value}

        system.runner.catch_up()
        history = system.history.history(tenant, "hot", after=0, limit=1000, action="progress_updated")
        assert Counter(e["data"]["objective_progress"]["o1"] for e in history.items) == Counter(recorded)
        assert {e["actor"] for e in history.items} == {f"w{int(v)}" for v, _ in successes}
        analytics = system.analytics.agent(tenant, "hot")
        assert analytics is not None
        assert analytics["updates"] == len(successes)
        assert analytics["objectives"][0]["progress"] == last_value
        return successes, failures


@pytest.mark.parametrize("retries", [1, 3])
def test_concurrent_updates_with_few_retries(
    make_settings: Callable[..., Settings], tenant: str, retries: int
) -> None:
    successes, failures = _race(make_settings, tenant, retries=retries, if_match=False)
    assert successes
    assert all(isinstance(f, ConcurrencyConflict) and f.attempts == retries for f in failures)


def test_concurrent_updates_with_default_retries(make_settings: Callable[..., Settings], tenant: str) -> None:
    successes, failures = _race(make_settings, tenant, retries=None, if_match=False)
    assert successes
    assert all(isinstance(f, ConcurrencyConflict) and f.attempts == 8 for f in failures)


def test_concurrent_updates_with_if_match(make_settings: Callable[..., Settings], tenant: str) -> None:
    successes, failures = _race(make_settings, tenant, retries=None, if_match=True)
    assert successes
    assert all(isinstance(f, VersionMismatch) for f in failures)
