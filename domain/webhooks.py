"""Webhook subscriptions: a tenant's endpoint, the event types it wants, and its signing
secret, sealed (the domain never sees the secret in clear: the application seals it before
the subscription exists). And the retry rule of deliveries, pure.

A subscription is keyed in its tenant by an id the service picks (`subscription_id`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError, InvalidCommand
from domain.ids import NAMESPACE
from domain.limits import MAX_URL, text_problem
from domain.meta import Meta, meta_fields

# The event types a subscription may ask for, and the log's event (class name) each one is.
EVENT_TYPES: dict[str, str] = {
    "GoalsSet": "goals_set",
    "MilestoneReached": "milestone_reached",
    "StatusChanged": "status_changed",
    "MetricsCollectionFailed": "metrics_collection_failed",
    "MetricsCollectionRecovered": "metrics_collection_recovered",
    "GoalStagnant": "goal_stagnant",
}
WEBHOOK_EVENTS = frozenset(EVENT_TYPES.values())
# Live subscriptions a tenant may have: each one multiplies the deliveries of every event.
MAX_SUBSCRIPTIONS = 50
SUBSCRIPTION_ID = re.compile(r"wh_[0-9a-f]{32}\Z")
MAX_SEALED = 512


def webhook_subscription_id(tenant: str, subscription_id: str) -> UUID:
    return uuid5(NAMESPACE, f"{tenant}:webhook:{subscription_id}")


def delivery_id(subscription: UUID, position: int) -> str:
    """The `webhook-id` of the delivery of the event at log `position` to a subscription: the
    same however often it is sent, or written again."""
    return "msg_" + uuid5(NAMESPACE, f"webhook-delivery:{subscription.hex}:{position}").hex


def event_type(event_class_name: str) -> str | None:
    """The webhook event type of a log event, by its class name; None: not one sent."""
    return EVENT_TYPES.get(event_class_name)


class SubscriptionDeleted(DomainError):
    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"webhook subscription {subscription_id!r} was deleted")
        self.subscription_id = subscription_id


class TooManySubscriptions(DomainError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the tenant has {limit} webhook subscriptions, the most it may; delete one first")
        self.limit = limit


class SealedSecretUnreadable(Exception):
    """A sealed secret that cannot be opened (sealed under another SECRETS_KEY, or altered)."""


def subscription_problems(url: object, events: object) -> dict[str, str]:
    """Every wrong field of a subscription, by its path."""
    problems: dict[str, str] = {}
    if p := text_problem(url, MAX_URL, required=True):
        problems["url"] = p
    if not isinstance(events, list | tuple) or not events:
        problems["events"] = "must list at least one event type"
        return problems
    for i, name in enumerate(events):
        if name not in WEBHOOK_EVENTS:
            problems[f"events.{i}"] = f"must be one of {', '.join(sorted(WEBHOOK_EVENTS))}"
    if len(set(events)) != len(events):
        problems["events"] = "lists an event type twice"
    return problems


class WebhookSubscription(Aggregate):
    """Where a tenant wants its events sent. Changed only by its events."""

    class Event(Aggregate.Event):
        tenant: str
        subscription_id: str
        actor: str
        request_id: str
        idempotency_key: str | None

    class Subscribed(Event, Aggregate.Created):
        url: str
        events: list[str]
        sealed_secret: str  # the signing secret, encrypted (infrastructure.secret_box)

    class Unsubscribed(Event):
        def apply(self, subscription: WebhookSubscription) -> None:
            subscription.deleted = True

    def __init__(
        self,
        tenant: str,
        subscription_id: str,
        actor: str,
        request_id: str,
        idempotency_key: str | None,
        url: str,
        events: list[str],
        sealed_secret: str,
    ) -> None:
        self.tenant = tenant
        self.subscription_id = subscription_id
        self.url = url
        self.events = list(events)
        self.sealed_secret = sealed_secret
        self.deleted = False

    @property
    def agent_id(self) -> str:
        """Its key in the tenant, by the name the command loop gives every key."""
        return self.subscription_id

    @classmethod
    def subscribe(
        cls, tenant: str, subscription_id: str, url: str, events: Sequence[str], sealed_secret: str, meta: Meta
    ) -> WebhookSubscription:
        if problems := subscription_problems(url, list(events)):
            raise InvalidCommand(problems)
        if not SUBSCRIPTION_ID.match(subscription_id) or text_problem(sealed_secret, MAX_SEALED, required=True):
            raise ValueError("a subscription needs an id wh_<32 hex> and a sealed secret")
        return cls._create(
            cls.Subscribed,
            id=webhook_subscription_id(tenant, subscription_id),
            tenant=tenant,
            subscription_id=subscription_id,
            url=url,
            events=list(events),
            sealed_secret=sealed_secret,
            **meta_fields(meta),
        )

    def unsubscribe(self, meta: Meta) -> None:
        if self.deleted:
            raise SubscriptionDeleted(self.subscription_id)
        self.trigger_event(
            self.Unsubscribed, tenant=self.tenant, subscription_id=self.subscription_id, **meta_fields(meta)
        )


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed delivery is tried again: exponential backoff from `first_s` doubling up
    to `max_s`, with jitter, for at most `retry_for_s` after the delivery was written and at
    most `max_attempts` attempts; after that it has failed."""

    first_s: float = 5.0
    max_s: float = 3600.0
    retry_for_s: float = 86_400.0
    max_attempts: int = 30

    def next_attempt(self, attempts: int, created_at: float, now: float, jitter: float) -> float | None:
        """When to try again after `attempts` failed attempts (`jitter` in [0, 1)); None: give up."""
        if attempts >= self.max_attempts:
            return None
        backoff = min(self.max_s, self.first_s * math.pow(2, min(attempts - 1, 60)))
        # "Equal jitter": half the backoff, plus up to the other half at random.
        earliest, deadline = now + backoff / 2, created_at + self.retry_for_s
        if earliest > deadline:
            return None
        return min(earliest + backoff / 2 * jitter, deadline)
