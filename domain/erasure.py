"""The record that a tenant was erased (crypto-shredding, docs/security.md#erasure).

One small aggregate per tenant, keyed by the tenant's name through its id only: its events
carry no tenant field, so they are sealed under the system's data key and outlive the
tenant's. It holds nothing of the tenant's data: who erased it, when, and the id of the data
key destroyed.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.ids import NAMESPACE
from domain.meta import Meta, meta_fields


def erasure_id(tenant: str) -> UUID:
    return uuid5(NAMESPACE, f"tenant-erasure:{tenant}")


class TenantErasure(Aggregate):
    class Event(Aggregate.Event):
        key_id: str  # hex id of the data key destroyed ('' when the tenant had none)
        actor: str
        request_id: str
        idempotency_key: str | None

    class TenantErased(Event, Aggregate.Created):
        pass

    def __init__(self, key_id: str, actor: str, request_id: str, idempotency_key: str | None) -> None:
        self.key_id = key_id

    @classmethod
    def erased(cls, tenant: str, key_id: str, meta: Meta) -> TenantErasure:
        return cls._create(cls.TenantErased, id=erasure_id(tenant), key_id=key_id, **meta_fields(meta))
