"""Event payloads encrypted per tenant, on SQLite and PostgreSQL: nothing of a payload in the
stored rows, every read and rebuild as before, master keys rotated without touching the log."""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import Mapper

from application.goals import ProgressUpdate
from domain.objectives import GoalDefinition, Objective
from infrastructure.data_keys import EncryptionKeyError, master_key_id
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.wiring.audit import audit_verifier
from tests.integration.support import fresh_settings, history_rows, meta, progress_rows, rebuilt_rows


@contextmanager
def _running(
    make_settings: Callable[..., Settings], tmp_path: Path, **overrides: str
) -> Iterator[Callable[..., AbstractContextManager[System]]]:
    """Systems on one store of their own (a fresh DATA_DIR, or a fresh PostgreSQL database):
    each test's master keys meet only the data keys it made."""
    with fresh_settings(make_settings(**overrides), tmp_path) as fresh:

        @contextmanager
        def system(**changes: str) -> Iterator[System]:
            values = {"ENCRYPTION": changes.get("ENCRYPTION", "on"), "RUN_PROJECTIONS_IN_PROCESS": "false"}
            values.update(changes)
            settings = Settings(**{**_aliased(fresh), **values})  # type: ignore[arg-type]
            built = build_system(settings)
            try:
                yield built
            finally:
                built.close()

        yield system


def _aliased(settings: Settings) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.database_url,
        "ELASTICSEARCH_URL": "",
        "ANCHOR_CHECK_S": "0",
    }


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _purpose(tenant: str) -> str:
    return f"Confidential purpose of {tenant}: merge with Initech by Q3"


def _write(system: System, tenant: str) -> None:
    definition = GoalDefinition(_purpose(tenant), (Objective("o1", "Secret objective title"),))
    system.goals.set_goals(tenant, "agent-1", definition, meta())
    for value in (10, 30, 60):
        system.goals.record_progress(tenant, ProgressUpdate("agent-1", {"o1": value}), meta())


def _stored(system: System) -> list[bytes]:
    """Every stored payload, events and snapshots, as the database holds them."""
    assert system.goals.snapshots is not None
    tables = [system.goals.recorder, system.goals.snapshots.recorder]
    sql = " UNION ALL ".join(f"SELECT state FROM {r.events_table_name}" for r in tables)  # type: ignore[attr-defined]
    if system.settings.is_postgres:
        with psycopg.connect(system.settings.database_url) as conn:
            return [bytes(r[0]) for r in conn.execute(sql).fetchall()]  # type: ignore[arg-type]
    with sqlite3.connect(system.settings.events_path) as lite:
        return [bytes(r[0]) for r in lite.execute(sql).fetchall()]


def _data_key_masters(settings: Settings) -> set[str]:
    sql = "SELECT master_id FROM a2a_data_keys"
    if settings.is_postgres:
        with psycopg.connect(settings.database_url) as conn:
            return {r[0] for r in conn.execute(sql).fetchall()}
    with sqlite3.connect(settings.events_path) as conn:
        return {r[0] for r in conn.execute(sql).fetchall()}


def test_two_tenants_payloads_are_not_stored_in_clear_and_read_normally(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    tenants = ["acme", "globex"]
    with (
        _running(make_settings, tmp_path) as running,
        running(MASTER_KEYS=_key(), SNAPSHOT_INTERVAL="2") as system,
    ):
        for tenant in tenants:
            _write(system, tenant)
        system.runner.catch_up()
        stored = _stored(system)
        assert len(stored) >= 8  # both tenants' events, and snapshots taken every 2
        for payload in stored:
            for tenant in tenants:
                assert _purpose(tenant).encode() not in payload
            assert b"Secret objective title" not in payload
            assert b"Initech" not in payload
        for tenant in tenants:
            rows = progress_rows(system.store, tenant)
            assert len(rows) == 1 and _purpose(tenant) in str(rows[0])
            assert system.goals.goals_at(
                tenant, "agent-1", version=2
            ).definition.purpose_statement == _purpose(tenant)
            progress, history = rebuilt_rows(system, tenant, tmp_path)
            assert progress == rows  # a rebuild decrypts the log into the same read model
            assert history == history_rows(system.store, tenant) and len(history) >= 4
        result = audit_verifier(system.goals, system.store).verify()
        assert result.first_bad is None and result.events == len(system.goals.read_log(0, 1000))


def test_rotating_the_master_key_keeps_every_old_event_readable(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    old, new = _key(), _key()
    with _running(make_settings, tmp_path) as running:
        _rotate(running, old, new)


def _rotate(running: Callable[..., AbstractContextManager[System]], old: str, new: str) -> None:
    with running(MASTER_KEYS=old) as system:
        _write(system, "acme")
        _write(system, "globex")
        before = [(p, repr(e)) for p, e in system.goals.read_log(0, 1000)]
        settings = system.settings
        stored = _stored(system)
    assert _data_key_masters(settings) == {master_key_id(base64.b64decode(old))}

    with running(MASTER_KEYS=f"{new},{old}") as system:
        assert [(p, repr(e)) for p, e in system.goals.read_log(0, 1000)] == before
        assert _stored(system) == stored  # the log itself is untouched
    assert _data_key_masters(settings) == {master_key_id(base64.b64decode(new))}

    # The old master key is no longer needed: a process with the new one alone reads it all.
    with running(MASTER_KEYS=new) as system:
        assert [(p, repr(e)) for p, e in system.goals.read_log(0, 1000)] == before
        assert system.goals.current("globex", "agent-1") is not None


def test_a_wrong_master_key_fails_at_start_without_showing_keys(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    right, wrong = _key(), _key()
    with _running(make_settings, tmp_path) as running:
        with running(MASTER_KEYS=right) as system:
            _write(system, "acme")
        with pytest.raises(EncryptionKeyError) as refused, running(MASTER_KEYS=wrong):
            pass
    message = str(refused.value)
    assert master_key_id(base64.b64decode(right)) in message and "not in MASTER_KEYS" in message
    assert right not in message and wrong not in message


def test_encryption_off_stores_what_the_library_stores(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with _running(make_settings, tmp_path) as running, running(ENCRYPTION="off") as system:
        _write(system, "acme")
        rows = system.goals.recorder.select_notifications(start=None, limit=100)
        plain = Mapper(transcoder=system.goals.construct_transcoder())
        assert type(system.goals.mapper) is Mapper
        for row in rows:
            event = plain.to_domain_event(row)
            assert plain.to_stored_event(event).state == row.state  # byte for byte
        assert any(_purpose("acme").encode() in s for s in _stored(system))


def test_turning_encryption_on_reads_the_events_stored_before(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with _running(make_settings, tmp_path) as running:
        _turn_on(running)


def _turn_on(running: Callable[..., AbstractContextManager[System]]) -> None:
    with running(ENCRYPTION="off") as system:
        _write(system, "acme")
    with running(MASTER_KEYS=_key()) as system:
        system.goals.record_progress("acme", ProgressUpdate("agent-1", {"o1": 80}), meta())
        system.runner.catch_up()
        assert system.goals.current("acme", "agent-1") is not None
        events = system.goals.read_log(0, 1000)
        assert [e.overall_progress for _, e in events if hasattr(e, "overall_progress")][-1] == 80
        assert len(progress_rows(system.store, "acme")) == 1
        last = system.goals.recorder.select_notifications(start=None, limit=1000)[-1]
        assert not last.state.startswith(b"{")  # what is stored from now on is sealed


def test_turning_encryption_off_on_a_sealed_store_is_refused_at_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with _running(make_settings, tmp_path) as running:
        with running() as system:
            _write(system, "acme")
        # Off, the library's mapper could read none of it: writes to sealed aggregates and
        # projections of sealed events would fail one by one, long after the start.
        with pytest.raises(EncryptionKeyError, match="ENCRYPTION is off but this store holds"), running(
            ENCRYPTION="off"
        ):
            pass
        with running() as system:  # on again, everything reads
            assert system.goals.current("acme", "agent-1") is not None
