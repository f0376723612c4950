"""OAuth client use cases: register, rotate, disable, authenticate."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from application.errors import ConcurrencyConflict
from domain.clients import ClientDisabled, OAuthClient
from domain.ids import client_id_to_uuid


@dataclass(frozen=True)
class SecretScheme:
    """How secrets are made and hashed (infrastructure supplies a real KDF)."""

    new_client_id: Callable[[], str]
    new_secret: Callable[[], str]
    hash: Callable[[str], str]
    verify: Callable[[str, str], bool]


@dataclass(frozen=True)
class IssuedCredentials:
    client_id: str
    client_secret: str
    tenant: str
    scopes: tuple[str, ...]
    position: int


class ClientNotFound(Exception):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"no client {client_id!r}")
        self.client_id = client_id


@dataclass(frozen=True)
class Authentication:
    """What a credentials check found: the client when they hold, and whose client the id
    names either way (None for an id no client has)."""

    client: OAuthClient | None
    tenant: str | None


class ClientsService:
    """Clients live in the same log as goals, so their history is audited the same way."""

    def __init__(self, app: Application[UUID], scheme: SecretScheme) -> None:
        self._app = app
        self._scheme = scheme

    def create(self, tenant: str, name: str, scopes: list[str], actor: str) -> IssuedCredentials:
        """Register a client; the secret is returned once and only its hash is kept."""
        client_id = self._scheme.new_client_id()
        secret = self._scheme.new_secret()
        client = OAuthClient.register(client_id, tenant, name, scopes, self._scheme.hash(secret), actor)
        recordings = self._app.save(client)
        return IssuedCredentials(client_id, secret, tenant, client.scopes, recordings[-1].notification.id)

    def rotate_secret(self, client_id: str, actor: str, *, tenant: str | None = None) -> IssuedCredentials:
        secret = self._scheme.new_secret()
        secret_hash = self._scheme.hash(secret)

        def rotate(client: OAuthClient) -> None:
            client.rotate_secret(secret_hash, actor)

        client, position = self._change(client_id, tenant, rotate)
        return IssuedCredentials(client_id, secret, client.tenant, client.scopes, position)

    def disable(self, client_id: str, reason: str, actor: str, *, tenant: str | None = None) -> int:
        _, position = self._change(client_id, tenant, lambda client: client.disable(reason, actor))
        return position

    def _change(
        self, client_id: str, tenant: str | None, change: Callable[[OAuthClient], None]
    ) -> tuple[OAuthClient, int]:
        """Load the client from the log, change it and save; a save that lost a race with
        another process's change (a rotation, a disabling) is made again on what the log
        holds, a bounded number of times. The client and the position of the change."""
        for _ in range(CHANGE_ATTEMPTS):
            client = self.get(client_id, tenant=tenant)
            change(client)
            try:
                recordings = self._app.save(client)
            except IntegrityError:
                continue
            position = recordings[-1].notification.id if recordings else self._app.recorder.max_notification_id()
            return client, position or 0
        raise ConcurrencyConflict(client_id, CHANGE_ATTEMPTS, kind="client")

    def authenticate(self, client_id: str, secret: str) -> OAuthClient | None:
        """The client when the secret matches and it is enabled; None otherwise."""
        return self.attempt(client_id, secret).client

    def attempt(self, client_id: str, secret: str) -> Authentication:
        """`authenticate`, telling also whose client a wrong secret was tried on; raises
        ClientDisabled (with the tenant) for a disabled client's right secret."""
        try:
            client = self.get(client_id)
        except ClientNotFound:
            # Spend the same time as a real check, so timing does not reveal which ids exist.
            self._scheme.verify(secret, _DUMMY_HASH)
            return Authentication(None, None)
        if not self._scheme.verify(secret, client.secret_hash):
            return Authentication(None, client.tenant)
        if client.disabled:
            raise ClientDisabled(client_id, client.tenant)
        return Authentication(client, client.tenant)

    def tenant_of(self, client_id: str) -> str | None:
        """The tenant of a client, None for an id no client has."""
        try:
            return self.get(client_id).tenant
        except ClientNotFound:
            return None

    def get(self, client_id: str, *, tenant: str | None = None) -> OAuthClient:
        """A client; with `tenant`, one of that tenant's only (others are not found)."""
        try:
            # What the log holds now, never a copy cached in this process: another replica may
            # have rotated the secret or disabled the client since (the aggregate cache is not
            # fast-forwarded, see infrastructure.eventstore); an explicit version bypasses it.
            client: OAuthClient = self._app.repository.get(client_id_to_uuid(client_id), version=LATEST)
        except AggregateNotFoundError:
            raise ClientNotFound(client_id) from None
        if tenant is not None and client.tenant != tenant:
            raise ClientNotFound(client_id)
        return client


CHANGE_ATTEMPTS = 10
LATEST = sys.maxsize  # a version no aggregate reaches: "up to the last event"
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
