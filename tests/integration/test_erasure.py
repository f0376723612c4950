"""Erasure of a tenant by destroying its data key, on SQLite and PostgreSQL: its read-model
rows gone and not brought back by a rebuild, its events still in the log but unreadable, the
other tenant untouched, the audit tree's root unchanged."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from application.erasure import ErasureRefused, ErasureUnavailable
from application.goals import ProgressUpdate
from application.registry import CardSource
from domain.erasure import TenantErasure, erasure_id
from domain.objectives import GoalDefinition, Objective
from infrastructure.data_keys import DataKeys, MasterKeys, PayloadErased, TenantErasedError
from infrastructure.erasure_register import ErasureRegister
from infrastructure.payload_cipher import ErasedPayload, data_key_table
from infrastructure.settings import Settings
from interfaces.bootstrap import System
from interfaces.wiring.audit import audit_verifier, rows_after
from interfaces.wiring.erasure import build_erasure, reapply_erasures
from tests.integration.support import history_rows, meta, progress_rows, rebuilt_rows
from tests.integration.test_encryption import _running

ERASED, KEPT = "acme", "globex"
CARD = json.loads((Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _write(system: System, tenant: str) -> None:
    definition = GoalDefinition(f"Purpose of {tenant}", (Objective("o1", "Objective of " + tenant),))
    system.goals.set_goals(tenant, "agent-1", definition, meta())
    for value in (10, 30, 60):
        system.goals.record_progress(tenant, ProgressUpdate("agent-1", {"o1": value}), meta())
    issued = system.clients.create(tenant, "reporting", ["goals:read"], actor="tester")
    system.clients.rotate_secret(issued.client_id, "tester", tenant=tenant)
    system.clients.disable(issued.client_id, f"Contract with {tenant} ended", "tester", tenant=tenant)
    system.registry.register(tenant, "agent-1", CardSource(card=CARD), "private", meta())


def _count(system: System, table: str, tenant: str) -> int:
    with system.store.read() as tx:
        found = tx.fetchone(f"SELECT COUNT(*) FROM {table} WHERE tenant = ?", (tenant,))
    return int(found[0]) if found is not None else 0


def test_erasing_a_tenant_leaves_nothing_of_it_readable_and_the_other_untouched(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    key = _key()
    with _running(make_settings, tmp_path) as running:
        with running(MASTER_KEYS=key, SNAPSHOT_INTERVAL="2") as system:
            for tenant in (ERASED, KEPT):
                _write(system, tenant)
            system.runner.catch_up()
            kept = progress_rows(system.store, KEPT), history_rows(system.store, KEPT)
            assert progress_rows(system.store, ERASED) and _count(system, "oauth_clients", ERASED) == 1
            assert _count(system, "agent_cards", ERASED) == 1 and _count(system, "agent_search", ERASED) == 1
            kept_search = _count(system, "agent_search", KEPT)
            before = audit_verifier(system.goals, system.store).verify()
            assert before.first_bad is None
            position_before = system.goals.log_position()
            stored_before = {r.id: bytes(r.state) for r in rows_after(system.goals, 0, 10_000)}

            done = build_erasure(system).erase(ERASED, meta("operator"))
            assert done.key_id and done.rows_removed >= 2

            for table in ("goal_progress", "event_facts", "oauth_clients", "agent_goal_summaries", "agent_search"):
                assert _count(system, table, ERASED) == 0, table
            assert _count(system, "agent_cards", ERASED) == 0
            assert _count(system, "agent_search", KEPT) == kept_search == 1
            assert (progress_rows(system.store, KEPT), history_rows(system.store, KEPT)) == kept
            with pytest.raises(TenantErasedError):  # no new key, so no new write, for it
                system.goals.set_goals(ERASED, "agent-2", GoalDefinition("New", (Objective("o1", "x"),)), meta())
            # The erasure is in the log, as an event that carries nothing of the tenant.
            erasure = system.goals.repository.get(erasure_id(ERASED))
            assert isinstance(erasure, TenantErasure) and erasure.key_id == done.key_id
            settings = system.settings

        # Another process, started afterwards, with the same master key.
        with running(MASTER_KEYS=key) as system:
            log = system.goals.read_log(0, 10_000)
            erased = [p for p, e in log if isinstance(e, ErasedPayload)]
            # registered, goals set, three progress reports, the client made, rotated and disabled
            assert len(erased) >= 8
            # Nothing of it reads in the clear, its client's later events included.
            assert not any(getattr(e, "tenant", None) == ERASED or f"with {ERASED}" in repr(e) for _, e in log)
            assert any(f"with {KEPT}" in repr(e) for _, e in log)
            stored_after = {r.id: bytes(r.state) for r in rows_after(system.goals, 0, 10_000)}
            assert all(stored_after[p] == stored_before[p] for p in erased)  # still there, sealed
            with pytest.raises(PayloadErased):
                system.goals.current(ERASED, "agent-1")
            assert system.goals.current(KEPT, "agent-1") is not None

            assert rebuilt_rows(system, ERASED, tmp_path) == ([], [])
            assert rebuilt_rows(system, KEPT, tmp_path) == kept
            system.rebuilder.rebuild(system.rebuilder.names, restart=True)
            for table in ("goal_progress", "event_facts", "oauth_clients", "agent_cards", "agent_search"):
                assert _count(system, table, ERASED) == 0, table
            assert _count(system, "agent_search", KEPT) == 1
            assert (progress_rows(system.store, KEPT), history_rows(system.store, KEPT)) == kept

            after = audit_verifier(system.goals, system.store).verify(stop=position_before)
            assert after.first_bad is None
            assert (after.tree_size, after.root_hash) == (before.tree_size, before.root_hash)
            whole = audit_verifier(system.goals, system.store).verify()
            assert whole.first_bad is None and whole.tree_size == len(log)
    assert settings.encryption_on


def test_erasure_is_refused_when_encryption_is_off(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with _running(make_settings, tmp_path) as running, running(ENCRYPTION="off") as system:
        _write(system, ERASED)
        system.runner.catch_up()
        with pytest.raises(ErasureUnavailable, match="ENCRYPTION is off"):
            build_erasure(system).erase(ERASED, meta("operator"))
        assert progress_rows(system.store, ERASED)


def test_a_tenant_in_the_erasure_register_is_erased_again_at_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A database that holds a tenant's data key although the register says it was erased (a
    backup from before the erasure, restored; or an erasure cut short after the register was
    written): the next start erases it again, and audit verify still passes."""
    key, register = _key(), str(tmp_path / "secrets" / "erasures.jsonl")
    with _running(make_settings, tmp_path) as running:
        with running(MASTER_KEYS=key, ERASURE_REGISTER=register) as system:
            for tenant in (ERASED, KEPT):
                _write(system, tenant)
            system.runner.catch_up()
            kept = progress_rows(system.store, KEPT), history_rows(system.store, KEPT)
            before = audit_verifier(system.goals, system.store).verify()
            position_before = system.goals.log_position()
            assert reapply_erasures(system, "start") == []  # no register file yet: nothing to do

        as_elsewhere = ErasureRegister(Path(register))  # as the erasure, after the backup, wrote it
        as_elsewhere.begun(ERASED)
        as_elsewhere.finished(ERASED)
        with running(MASTER_KEYS=key, ERASURE_REGISTER=register) as system:
            assert system.goals.current(ERASED, "agent-1") is not None  # the key is still here
            done = reapply_erasures(system, "start")
            assert [(d.tenant, bool(d.key_id)) for d in done] == [(ERASED, True)]
            with pytest.raises(PayloadErased):
                system.goals.current(ERASED, "agent-1")
            assert progress_rows(system.store, ERASED) == [] and _count(system, "agent_cards", ERASED) == 0
            assert (progress_rows(system.store, KEPT), history_rows(system.store, KEPT)) == kept
            assert reapply_erasures(system, "start") == []  # once is enough

        with running(MASTER_KEYS=key, ERASURE_REGISTER=register) as system:
            assert rebuilt_rows(system, ERASED, tmp_path) == ([], [])
            after = audit_verifier(system.goals, system.store).verify(stop=position_before)
            assert after.first_bad is None
            assert (after.tree_size, after.root_hash) == (before.tree_size, before.root_hash)
            assert audit_verifier(system.goals, system.store).verify().first_bad is None


def test_the_operator_tenant_is_never_erased(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    register = tmp_path / "erasures.jsonl"
    with (
        _running(make_settings, tmp_path) as running,
        running(OPERATOR_TENANT=ERASED, ERASURE_REGISTER=str(register)) as system,
    ):
        _write(system, ERASED)
        system.runner.catch_up()
        with pytest.raises(ErasureRefused, match="operator tenant"):
            build_erasure(system).erase(ERASED, meta("operator"))
        assert not register.exists()  # nothing for a restart to finish
        assert system.goals.current(ERASED, "agent-1") is not None
        assert progress_rows(system.store, ERASED)


def test_another_process_forgets_an_erased_tenants_key_within_its_recheck(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Another process (its own DataKeys on the same table) had opened the tenant's key: it
    keeps using it until its next check, then reads the tenant as erased, writes nothing more
    for it and drops what it had opened of it; the other tenant's key stays open."""
    key, now = _key(), [0.0]
    with _running(make_settings, tmp_path) as running, running(MASTER_KEYS=key) as system:
        for tenant in (ERASED, KEPT):
            _write(system, tenant)
        other = DataKeys(data_key_table(system.goals.factory), MasterKeys.parse(key), recheck_s=30, clock=lambda: now[0])
        forgotten: list[set[str]] = []
        other.on_forget = forgotten.append
        erased_id, _ = other.for_tenant(ERASED)
        kept_id, _ = other.for_tenant(KEPT)

        build_erasure(system).erase(ERASED, meta("operator"))
        now[0] = 29.0
        assert other.by_id(erased_id) is not None  # within the window: still held
        assert forgotten == []
        now[0] = 30.0
        with pytest.raises(PayloadErased):
            other.by_id(erased_id)
        with pytest.raises(TenantErasedError):
            other.for_tenant(ERASED)
        assert forgotten == [{ERASED}]
        assert other.for_tenant(KEPT)[0] == kept_id and other.by_id(kept_id) is not None


def test_an_erasure_cut_short_after_the_key_is_destroyed_is_finished_at_the_next_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    key, register = _key(), tmp_path / "erasures.jsonl"
    with _running(make_settings, tmp_path) as running:
        with running(MASTER_KEYS=key, ERASURE_REGISTER=str(register)) as system:
            for tenant in (ERASED, KEPT):
                _write(system, tenant)
            system.runner.catch_up()
            erasure = build_erasure(system)

            def crash(position: int) -> None:
                raise RuntimeError("the process died here")

            erasure._settle = crash  # after the key is destroyed, before the rows are removed
            with pytest.raises(RuntimeError, match="died"):
                erasure.erase(ERASED, meta("operator"))
            assert progress_rows(system.store, ERASED)  # left behind
            entries = ErasureRegister(register).entries()
            assert entries.tenants == [ERASED] and entries.finished == frozenset()

        with running(MASTER_KEYS=key, ERASURE_REGISTER=str(register)) as system:
            done = reapply_erasures(system, "start")
            assert [d.tenant for d in done] == [ERASED] and done[0].rows_removed > 0
            assert progress_rows(system.store, ERASED) == [] and _count(system, "agent_cards", ERASED) == 0
            assert progress_rows(system.store, KEPT)
            assert ErasureRegister(register).entries().finished == {ERASED}
            assert reapply_erasures(system, "start") == []


def test_a_lost_register_is_written_again_from_the_database(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    key, register = _key(), tmp_path / "erasures.jsonl"
    with _running(make_settings, tmp_path) as running, running(MASTER_KEYS=key, ERASURE_REGISTER=str(register)) as system:
        _write(system, ERASED)
        build_erasure(system).erase(ERASED, meta("operator"))
        register.unlink()  # a volume not mounted, a register replaced
        assert reapply_erasures(system, "start") == []  # nothing to erase again
        entries = ErasureRegister(register).entries()
        assert entries.tenants == [ERASED] and entries.finished == {ERASED}


def test_a_write_by_a_process_still_holding_the_destroyed_key_keeps_the_log_verifiable(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Another process writes for the tenant after the erasure, before its next check forgets
    the key: the event is sealed under a key that no longer exists, and its audit leaf still
    recomputes (its timestamp is in the clear), so `audit verify` passes end to end."""
    key = _key()
    with (
        _running(make_settings, tmp_path) as running,
        running(MASTER_KEYS=key) as first,
        running(MASTER_KEYS=key) as second,
    ):
        for tenant in (ERASED, KEPT):
            _write(first, tenant)
        second.goals.record_progress(ERASED, ProgressUpdate("agent-1", {"o1": 70}), meta())  # opens the key
        build_erasure(first).erase(ERASED, meta("operator"))
        late = second.goals.record_progress(ERASED, ProgressUpdate("agent-1", {"o1": 80}), meta())
        first.runner.catch_up()
        log = dict(first.goals.read_log(0, 10_000))
        assert isinstance(log[late.position], ErasedPayload) and log[late.position].timestamp is not None
        verified = audit_verifier(first.goals, first.store).verify()
        assert verified.first_bad is None and verified.tree_size == len(log)
