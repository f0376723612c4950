"""Webhook subscriptions: subscribe (the endpoint checked by the outbound guard, a signing
secret made and sealed), unsubscribe, and the secret in clear for the sender, which alone
needs it. The secret is shown once, in the answer to the subscribing request (and to a retry
of it with the same Idempotency-Key)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from application.command_loop import Idempotency
from application.goals import GoalsApp
from application.kinds import Kind
from application.preconditions import IfMatch
from application.results import CommandResult
from domain.errors import InvalidCommand
from domain.meta import Meta
from domain.webhooks import (
    MAX_SUBSCRIPTIONS,
    TooManySubscriptions,
    WebhookSubscription,
    subscription_problems,
    webhook_subscription_id,
)


class SubscriptionNotFound(Exception):
    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"no webhook subscription {subscription_id!r}")
        self.subscription_id = subscription_id


WEBHOOKS = Kind("webhook subscription", WebhookSubscription, webhook_subscription_id, SubscriptionNotFound)


class SecretSealer(Protocol):
    """Encrypts secrets bound to their owner (infrastructure.secret_box.SecretBox)."""

    def seal(self, secret: bytes, owner: str) -> str: ...

    def open(self, sealed: str, owner: str) -> bytes:
        """The secret; SealedSecretUnreadable if it cannot be opened."""
        ...


@dataclass(frozen=True)
class Subscribed:
    result: CommandResult
    subscription_id: str
    secret: str


@dataclass(frozen=True)
class Endpoint:
    """What the sender needs of a live subscription."""

    url: str
    secret: str


class WebhooksService:
    def __init__(
        self,
        app: GoalsApp,
        sealer: SecretSealer,
        refusal: Callable[[str], str | None],
        new_secret: Callable[[], str],
        live_count: Callable[[str], int],
        *,
        limit: int = MAX_SUBSCRIPTIONS,
    ) -> None:
        """`refusal(url)`: why the outbound guard would refuse `url`, or None; `live_count(tenant)`:
        how many live subscriptions the tenant has (a read model: concurrent requests may pass
        the limit by a few)."""
        self._app = app
        self._live_count = live_count
        self._limit = limit
        self._sealer = sealer
        self._refusal = refusal
        self._new_secret = new_secret

    def subscribe(
        self, tenant: str, url: str, events: Sequence[str], meta: Meta, *, idempotency: Idempotency | None = None
    ) -> Subscribed:
        """Subscribe `url` to `events` of the tenant; the answer holds the signing secret."""
        if (replay := self._app.replayed(tenant, meta.actor, idempotency)) is not None:
            key = replay.first.agent_id
            endpoint = self.endpoint(tenant, key, include_deleted=True)
            return Subscribed(replay, key, endpoint.secret if endpoint else "")
        if problems := subscription_problems(url, list(events)):
            raise InvalidCommand(problems)
        if (reason := self._refusal(url)) is not None:
            raise InvalidCommand({"url": f"refused by the outbound guard: {reason}"})
        if self._live_count(tenant) >= self._limit:
            raise TooManySubscriptions(self._limit)
        key = f"wh_{uuid.uuid4().hex}"
        secret = self._new_secret()
        sealed = self._sealer.seal(secret.encode(), _owner(tenant, key))

        def change(loaded: dict[str, Any]) -> Sequence[Aggregate]:
            return [WebhookSubscription.subscribe(tenant, key, url, events, sealed, meta)]

        result = self._app.execute(tenant, [key], change, meta, None, idempotency, create=True, kind=WEBHOOKS)
        return Subscribed(result, key, secret)

    def unsubscribe(
        self,
        tenant: str,
        subscription_id: str,
        meta: Meta,
        *,
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Delete a subscription: nothing more is sent to it, pending deliveries included."""

        def change(loaded: dict[str, Any]) -> Sequence[Aggregate]:
            found: WebhookSubscription | None = loaded[subscription_id]
            if found is None or found.deleted:
                raise SubscriptionNotFound(subscription_id)
            found.unsubscribe(meta)
            return [found]

        return self._app.execute(
            tenant, [subscription_id], change, meta, expected_version, idempotency, kind=WEBHOOKS
        )

    def endpoint(self, tenant: str, subscription_id: str, *, include_deleted: bool = False) -> Endpoint | None:
        """The URL and the secret in clear of a live subscription; None if it is gone.
        SealedSecretUnreadable if its secret cannot be opened."""
        try:
            found: Aggregate = self._app.repository.get(webhook_subscription_id(tenant, subscription_id))
        except AggregateNotFoundError:
            return None
        if not WEBHOOKS.owns(found, tenant, subscription_id):
            return None
        assert isinstance(found, WebhookSubscription)
        if found.deleted and not include_deleted:
            return None
        secret = self._sealer.open(found.sealed_secret, _owner(tenant, subscription_id)).decode()
        return Endpoint(found.url, secret)


def _owner(tenant: str, subscription_id: str) -> str:
    """What a sealed secret is bound to: its subscription's aggregate id."""
    return webhook_subscription_id(tenant, subscription_id).hex
