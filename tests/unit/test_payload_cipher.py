"""The per-tenant payload cipher without a database: keys chosen by tenant, payloads bound to
their rows, payloads stored before encryption still read."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, Mapper, UUIDAsHex

from application.transcodings import FastJSONTranscoder, register_domain_transcodings
from domain.goals import AgentGoals
from domain.meta import Meta
from domain.objectives import GoalDefinition, Objective
from infrastructure.data_keys import (
    DataKeyRow,
    DataKeys,
    EncryptionKeyError,
    MasterKeys,
    PayloadErased,
    TenantErasedError,
)
from infrastructure.payload_cipher import MARKER, MARKER_V1, ErasedPayload, TenantCipherMapper, _row


class MemoryDataKeyTable:
    """The DataKeyTable port in a dict (the SQL tables are tested in tests/integration)."""

    def __init__(self) -> None:
        self.by_key: dict[bytes, DataKeyRow] = {}
        self.erased: dict[str, bytes] = {}
        self.stamped: dict[tuple[str, int], tuple[bytes, str]] = {}

    def create(self) -> None:
        pass

    def by_tenant(self, tenant: str) -> DataKeyRow | None:
        return next((r for r in self.by_key.values() if r.tenant == tenant), None)

    def by_id(self, key_id: bytes) -> DataKeyRow | None:
        return self.by_key.get(key_id)

    def insert_if_absent(self, row: DataKeyRow) -> None:
        if self.by_tenant(row.tenant) is None:
            self.by_key[row.key_id] = row

    def rows(self) -> list[DataKeyRow]:
        return list(self.by_key.values())

    def rewrap(self, key_id: bytes, wrapped: bytes, master_id: str, was: str) -> bool:
        row = self.by_key[key_id]
        if row.master_id != was:
            return False
        self.by_key[key_id] = row._replace(wrapped=wrapped, master_id=master_id)
        return True

    def erase(self, tenant: str, key_id: bytes, stamps: list[tuple[str, int, str]]) -> None:
        self.erased[tenant] = key_id
        self.stamped.update({(o, v): (key_id, t) for o, v, t in stamps})
        self.by_key = {k: r for k, r in self.by_key.items() if r.tenant != tenant}

    def erased_tenant(self, tenant: str) -> bool:
        return tenant in self.erased

    def erased_key(self, key_id: bytes) -> bool:
        return key_id in self.erased.values()

    def stamps(self, key_id: bytes) -> dict[tuple[str, int], str]:
        return {at: t for at, (k, t) in self.stamped.items() if k == key_id}

    def key_ids(self) -> set[bytes]:
        return set(self.by_key)

    def erased_tenants(self) -> list[str]:
        return sorted(self.erased)


def _transcoder() -> FastJSONTranscoder:
    transcoder = FastJSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    register_domain_transcodings(transcoder)
    return transcoder


def _event(tenant: str) -> AgentGoals.Event:
    goals = AgentGoals.start(
        tenant,
        "agent-1",
        GoalDefinition("Secret purpose", (Objective("o1", "One"),)),
        Meta(actor="a", request_id=""),
    )
    event: AgentGoals.Event = next(e for e in goals.collect_events() if hasattr(e, "definition"))
    return event


@pytest.fixture
def mapper() -> TenantCipherMapper:
    masters = MasterKeys((os.urandom(32),))
    return TenantCipherMapper(_transcoder(), DataKeys(MemoryDataKeyTable(), masters))


def test_each_tenant_has_its_own_key_and_reads_back(mapper: TenantCipherMapper) -> None:
    a, b = mapper.to_stored_event(_event("acme")), mapper.to_stored_event(_event("globex"))
    assert a.state.startswith(MARKER) and b"Secret purpose" not in a.state
    assert a.state[2:10] != b.state[2:10]  # the data key ids differ
    assert mapper.to_domain_event(a).definition.purpose_statement == "Secret purpose"  # type: ignore[attr-defined]


def test_a_payload_moved_to_another_row_does_not_open(mapper: TenantCipherMapper) -> None:
    stored = mapper.to_stored_event(_event("acme"))
    with pytest.raises(EncryptionKeyError, match="altered or moved"):
        mapper.to_domain_event(replace(stored, originator_version=stored.originator_version + 1))


def test_a_payload_stored_in_clear_still_reads(mapper: TenantCipherMapper) -> None:
    plain = Mapper(_transcoder()).to_stored_event(_event("acme"))
    assert mapper.to_domain_event(plain).definition.purpose_statement == "Secret purpose"  # type: ignore[attr-defined]


def test_rotation_rewraps_every_key_under_the_newest_master() -> None:
    old, new = os.urandom(32), os.urandom(32)
    table = MemoryDataKeyTable()
    before = TenantCipherMapper(_transcoder(), DataKeys(table, MasterKeys((old,))))
    stored = before.to_stored_event(_event("acme"))
    rotated = DataKeys(table, MasterKeys((new, old)))
    assert rotated.rotate() == 1 and rotated.rotate() == 0
    after = TenantCipherMapper(_transcoder(), DataKeys(table, MasterKeys((new,))))
    assert after.to_domain_event(stored).definition.purpose_statement == "Secret purpose"  # type: ignore[attr-defined]
    with pytest.raises(EncryptionKeyError, match="not in MASTER_KEYS"):
        DataKeys(table, MasterKeys((old,))).check()


def test_an_erased_tenants_payloads_read_as_erased_and_it_gets_no_new_key(mapper: TenantCipherMapper) -> None:
    event = _event("acme")
    a, b = mapper.to_stored_event(event), mapper.to_stored_event(_event("globex"))
    stamp = (str(a.originator_id), a.originator_version, event.timestamp.isoformat())
    assert mapper.keys.erase("acme", [stamp]) == a.state[2:10]
    erased = mapper.to_domain_event(a)
    assert isinstance(erased, ErasedPayload) and not hasattr(erased, "definition")
    assert erased.timestamp == event.timestamp and erased.originator_version == a.originator_version
    with pytest.raises(PayloadErased):
        erased.mutate(None)
    with pytest.raises(TenantErasedError, match="'acme' was erased"):
        mapper.to_stored_event(_event("acme"))
    assert mapper.to_domain_event(b).definition.purpose_statement == "Secret purpose"  # type: ignore[attr-defined]


def test_the_timestamp_is_in_the_clear_and_bound_to_the_payload(mapper: TenantCipherMapper) -> None:
    event = _event("acme")
    stored = mapper.to_stored_event(event)
    micros = int.from_bytes(stored.state[10:18], "big", signed=True)
    assert datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000) == event.timestamp
    changed = stored.state[:17] + bytes([stored.state[17] ^ 1]) + stored.state[18:]
    with pytest.raises(EncryptionKeyError, match="altered or moved"):
        mapper.to_domain_event(replace(stored, state=changed))


def test_an_erased_payload_keeps_its_timestamp_with_nothing_recorded(mapper: TenantCipherMapper) -> None:
    """Written after the erasure's record was taken (by a process still holding the key): its
    timestamp, which its audit leaf covers, still reads."""
    event = _event("acme")
    stored = mapper.to_stored_event(event)
    mapper.keys.erase("acme", [])
    erased = mapper.to_domain_event(stored)
    assert isinstance(erased, ErasedPayload) and erased.timestamp == event.timestamp


def test_the_earlier_form_without_the_timestamp_still_reads_and_erases(mapper: TenantCipherMapper) -> None:
    event = _event("acme")
    plain = Mapper(_transcoder()).to_stored_event(event)
    key_id, cipher = mapper.keys.for_tenant("acme")
    nonce = os.urandom(12)
    aad = _row(plain.originator_id, plain.originator_version, plain.topic)
    earlier = replace(plain, state=MARKER_V1 + key_id + nonce + cipher.encrypt(nonce, plain.state, aad))
    assert mapper.to_domain_event(earlier).definition.purpose_statement == "Secret purpose"  # type: ignore[attr-defined]
    mapper.keys.erase("acme", [(str(plain.originator_id), plain.originator_version, event.timestamp.isoformat())])
    erased = mapper.to_domain_event(earlier)
    assert isinstance(erased, ErasedPayload) and erased.timestamp == event.timestamp
