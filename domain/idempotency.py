"""An Idempotency-Key, remembered as an aggregate saved in the same transaction as the
command it guards: the key exists if and only if the command's events exist."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from domain.ids import idempotency_id


class KeyReused(Exception):
    """The same Idempotency-Key arrived with a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used for a different request")
        self.key = key


class IdempotencyRecord(Aggregate):
    class Recorded(Aggregate.Created):
        tenant: str
        key: str
        fingerprint: str
        actor: str
        result: dict[str, Any]

    def __init__(self, tenant: str, key: str, fingerprint: str, actor: str, result: dict[str, Any]):
        self.tenant = tenant
        self.key = key
        self.fingerprint = fingerprint
        self.actor = actor
        self.result = result

    @classmethod
    def record(
        cls, tenant: str, key: str, fingerprint: str, actor: str, result: dict[str, Any]
    ) -> IdempotencyRecord:
        return cls._create(
            cls.Recorded,
            id=idempotency_id(tenant, actor, key),
            tenant=tenant,
            key=key,
            fingerprint=fingerprint,
            actor=actor,
            result=result,
        )

    def check(self, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise KeyReused(self.key)
