"""Event payloads sealed with their tenant's data key: eventsourcing's Mapper, one key per tenant.

The library's Mapper takes one cipher for every event (CIPHER_TOPIC / CIPHER_KEY); this one
picks the key from the event: its `tenant` field (a snapshot's from the aggregate state it
holds), or the system's own key for events that belong to no tenant (peers, anchors). Only the
payload (the `state` column) is sealed; ids, versions, positions and topics stay in the clear.

Sealed form: MARKER (2 bytes) || data key id (8) || the event's timestamp (8: microseconds
since the epoch, signed) || nonce (12) || AES-256-GCM ciphertext and tag. The timestamp is
metadata, in the clear like ids and topics: the audit leaf covers it, so an event whose key was
destroyed still has its leaf recomputed (an event written under a key another process had
already destroyed included). The associated data binds a payload to its row (originator id,
version, topic) and to that timestamp, so a payload moved to another row, or a timestamp
changed, does not open. The earlier form (MARKER_V1) had no timestamp in the clear: it is
still read, and erasure keeps its timestamps in a table. A payload without a marker is read
as it is: events stored before encryption was turned on still load (JSON starts with `{`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from cryptography.exceptions import InvalidTag
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import InfrastructureFactory, Mapper, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory

from application.goals import PayloadMapper
from infrastructure.data_keys import (
    KEY_ID_BYTES,
    DataKeys,
    DataKeyTable,
    EncryptionKeyError,
    MasterKeys,
    PayloadErased,
    PostgresDataKeyTable,
    SQLiteDataKeyTable,
)
from infrastructure.secret_box import NONCE_BYTES

MARKER = b"\x00\xe2"
MARKER_V1 = b"\x00\xe1"  # the earlier form, without the timestamp in the clear
SYSTEM_TENANT = ""  # the data key of events that belong to no tenant
_KEY_END = len(MARKER) + KEY_ID_BYTES
_STAMP_END = _KEY_END + 8
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def tenant_of(event: Any) -> str:
    tenant = getattr(event, "tenant", None)
    if tenant is None:
        state = getattr(event, "state", None)
        if isinstance(state, dict):
            tenant = state.get("tenant")
    return tenant if isinstance(tenant, str) else SYSTEM_TENANT


class TenantCipherMapper(Mapper[UUID]):
    """Seals each stored event's payload under its tenant's data key."""

    def __init__(self, transcoder: Transcoder, keys: DataKeys) -> None:
        super().__init__(transcoder)
        self.keys = keys

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        stored = super().to_stored_event(domain_event)
        key_id, cipher = self.keys.for_tenant(tenant_of(domain_event))
        timestamp: datetime = cast("Any", domain_event).timestamp  # every event and snapshot has one
        stamp = ((timestamp - EPOCH) // MICROSECOND).to_bytes(8, "big", signed=True)
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = _row(stored.originator_id, stored.originator_version, stored.topic) + stamp
        return StoredEvent(
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=MARKER + key_id + stamp + nonce + cipher.encrypt(nonce, stored.state, aad),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        state = stored_event.state
        marker = state[: len(MARKER)]
        if marker == MARKER:
            head, stamp = _STAMP_END, bytes(state[_KEY_END:_STAMP_END])
        elif marker == MARKER_V1:
            head, stamp = _KEY_END, b""
        else:
            return super().to_domain_event(stored_event)
        sealed = memoryview(state)
        key_id = bytes(sealed[len(MARKER) : _KEY_END])
        try:
            cipher = self.keys.by_id(key_id)
        except PayloadErased:
            return self._erased(stored_event, key_id, stamp)
        aad = _row(stored_event.originator_id, stored_event.originator_version, stored_event.topic) + stamp
        body = head + NONCE_BYTES
        try:
            plain = cipher.decrypt(sealed[head:body], sealed[body:], aad)
        except InvalidTag:
            raise EncryptionKeyError(
                f"the payload of {stored_event.originator_id} v{stored_event.originator_version} does not"
                " open with its data key: it was altered or moved from another row"
            ) from None
        opened = _Opened(
            stored_event.originator_id, stored_event.originator_version, stored_event.topic, plain
        )
        return super().to_domain_event(cast("StoredEvent", opened))

    def _erased(self, stored_event: StoredEvent, key_id: bytes, stamp: bytes) -> DomainEventProtocol[UUID]:
        timestamp: datetime | None
        if stamp:
            timestamp = EPOCH + int.from_bytes(stamp, "big", signed=True) * MICROSECOND
        else:  # the earlier form: recorded at erasure
            kept = self.keys.erased_stamp(key_id, str(stored_event.originator_id), stored_event.originator_version)
            timestamp = datetime.fromisoformat(kept) if kept is not None else None
        return cast(
            "DomainEventProtocol[UUID]",
            ErasedPayload(
                originator_id=UUID(str(stored_event.originator_id)),
                originator_version=stored_event.originator_version,
                topic=stored_event.topic,
                timestamp=timestamp,
            ),
        )


@dataclass(frozen=True)
class ErasedPayload:
    """What an event sealed under a destroyed data key reads as: where it is in the log, and
    its timestamp (which the audit leaf covers), never its payload.
    It is no aggregate's event, so every projection passes it by."""

    originator_id: UUID
    originator_version: int
    topic: str
    timestamp: datetime | None

    def mutate(self, aggregate: Any) -> Any:
        """Loading an aggregate of an erased tenant stops here, with a clear error."""
        raise PayloadErased(f"aggregate {self.originator_id} belongs to an erased tenant: its events cannot be read")


class _Opened:
    """A stored event with its payload opened: what the library's Mapper reads of a
    StoredEvent, without the cost of a frozen dataclass on every event of a catch-up."""

    __slots__ = ("originator_id", "originator_version", "state", "topic")

    def __init__(self, originator_id: UUID | str, originator_version: int, topic: str, state: bytes) -> None:
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.topic = topic
        self.state = state


def _row(originator_id: UUID | str, version: int, topic: str) -> bytes:
    """The associated data: the row a payload belongs to."""
    ident = originator_id.bytes if isinstance(originator_id, UUID) else str(originator_id).encode()
    return ident + version.to_bytes(8, "big", signed=True) + topic.encode()


def data_key_table(factory: InfrastructureFactory[Any]) -> DataKeyTable:
    """The table of data keys beside the log of `factory`'s database (made if absent)."""
    datastore = getattr(factory, "datastore", None)
    table: DataKeyTable
    if isinstance(factory, PostgresFactory):
        table = PostgresDataKeyTable(datastore)
    elif isinstance(factory, SQLiteFactory):
        table = SQLiteDataKeyTable(datastore)
    else:
        raise EncryptionKeyError(f"ENCRYPTION=on needs PostgreSQL or SQLite, not {type(factory).__name__}")
    table.create()
    return table


def data_keys(factory: InfrastructureFactory[Any], masters: MasterKeys) -> DataKeys:
    """The data keys kept beside the log of `factory`'s database."""
    return DataKeys(data_key_table(factory), masters)


def plain_payloads(factory: InfrastructureFactory[Any], transcoder: Transcoder) -> Mapper[UUID]:
    """ENCRYPTION=off: the library's own mapper, unless the store already holds payloads sealed
    under data keys. Those could not be read without them: every write to a sealed aggregate
    and every projection of a sealed event would fail, so the process refuses to start."""
    table = data_key_table(factory)
    if table.key_ids():
        raise EncryptionKeyError(
            "ENCRYPTION is off but this store holds payloads sealed under tenants' data keys: set"
            " ENCRYPTION=on with the MASTER_KEYS that wrap them (turning encryption off does not"
            " decrypt what is stored)"
        )
    return Mapper(transcoder=transcoder)


def payload_mapper(masters: MasterKeys) -> PayloadMapper:
    """What GoalsApp makes its mapper with: the data keys beside the log, each re-wrapped by
    the newest master key if it was not yet, and each opened once, so that a missing or wrong
    master key fails at start (naming key ids, never keys)."""

    def make(factory: InfrastructureFactory[Any], transcoder: Transcoder) -> Mapper[UUID]:
        keys = data_keys(factory, masters)
        keys.rotate()
        keys.check()
        return TenantCipherMapper(transcoder, keys)

    return make
