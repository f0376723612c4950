"""OAuth clients as data: who may call the API, for which tenant, with which scopes."""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from domain.errors import InvalidCommand
from domain.ids import TENANT, client_id_to_uuid

SCOPES = frozenset(
    {
        "goals:read",
        "goals:write",
        "registry:read",
        "registry:write",
        "audit:read",
        "analytics:read",
        "admin",
    }
)


class ClientDisabled(Exception):
    def __init__(self, client_id: str, tenant: str | None = None) -> None:
        super().__init__(f"client {client_id!r} is disabled")
        self.client_id = client_id
        self.tenant = tenant


class OAuthClient(Aggregate):
    """A client of the API. Only a hash of its secret is ever recorded."""

    class Event(Aggregate.Event):
        client_id: str
        actor: str

    class Registered(Event, Aggregate.Created):
        tenant: str
        name: str
        scopes: tuple[str, ...]
        secret_hash: str

    # Later events name the tenant too, so that their payloads are sealed under its data key
    # and erased with it (events recorded before carry none: they are under the system key).
    class SecretRotated(Event):
        secret_hash: str
        tenant: str = ""

        def apply(self, client: OAuthClient) -> None:
            client.secret_hash = self.secret_hash

    class Disabled(Event):
        reason: str
        tenant: str = ""

        def apply(self, client: OAuthClient) -> None:
            client.disabled = True

    def __init__(
        self, client_id: str, tenant: str, name: str, scopes: tuple[str, ...], secret_hash: str, actor: str
    ) -> None:
        self.client_id = client_id
        self.tenant = tenant
        self.name = name
        self.scopes = tuple(scopes)
        self.secret_hash = secret_hash
        self.disabled = False
        self.created_by = actor

    @classmethod
    def register(
        cls, client_id: str, tenant: str, name: str, scopes: list[str], secret_hash: str, actor: str
    ) -> OAuthClient:
        unknown = sorted(set(scopes) - SCOPES)
        if unknown:
            raise InvalidCommand(
                {"scopes": f"unknown scopes: {', '.join(unknown)}; known: {' '.join(sorted(SCOPES))}"}
            )
        if not scopes:
            raise InvalidCommand({"scopes": "at least one scope is required"})
        if not TENANT.match(tenant):
            raise InvalidCommand({"tenant": "letters, digits, '_', '.' or '-', at most 64 (no ':')"})
        return cls._create(
            cls.Registered,
            id=client_id_to_uuid(client_id),
            client_id=client_id,
            tenant=tenant,
            name=name,
            scopes=tuple(sorted(set(scopes))),
            secret_hash=secret_hash,
            actor=actor,
        )

    def rotate_secret(self, secret_hash: str, actor: str) -> None:
        if self.disabled:
            raise ClientDisabled(self.client_id)
        self.trigger_event(
            self.SecretRotated, client_id=self.client_id, secret_hash=secret_hash, actor=actor, tenant=self.tenant
        )

    def disable(self, reason: str, actor: str) -> None:
        if not self.disabled:
            self.trigger_event(self.Disabled, client_id=self.client_id, reason=reason, actor=actor, tenant=self.tenant)
