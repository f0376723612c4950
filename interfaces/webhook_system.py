"""The webhooks' part of the composition root: the subscription commands, the sender and the
outbox rows, wired from Settings; and how deliveries are handed to the job workers."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Counter

from application.goals import GoalsApp
from application.ports import ReadStore
from application.webhook_delivery import DeliveryService, Outcome
from application.webhooks import WebhooksService
from domain.webhooks import RetryPolicy
from infrastructure.jobs import Jobs
from infrastructure.outbound import OutboundClient
from infrastructure.secret_box import SecretBox, parse_key
from infrastructure.settings import Settings
from infrastructure.webhook_sender import GuardedWebhookSender, refusal
from infrastructure.webhook_signing import new_secret
from projections.webhook_deliveries import WebhookDeliveries

log = logging.getLogger(__name__)
DELIVER_WEBHOOKS = "deliver_webhooks"
DISPATCH_WEBHOOKS = "dispatch_webhooks"
DELIVERIES = Counter(
    "a2a_goals_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, retrying (failed, to be tried again) or"
    " failed (given up: WEBHOOK_RETRY_FOR_S or WEBHOOK_MAX_ATTEMPTS reached).",
    ["outcome"],
)
MAX_RETRY_BACKOFF_S = 3600.0


@dataclass(frozen=True)
class Webhooks:
    subscriptions: WebhooksService
    delivery: DeliveryService
    rows: WebhookDeliveries


def lane_key(subscription_id: str, agent_id: str) -> str:
    """One job per lane at a time: the lane's deliveries go out in order."""
    return f"{DELIVER_WEBHOOKS}:{subscription_id}:{agent_id}"


def secret_box(settings: Settings) -> SecretBox:
    if settings.secrets_key is not None and settings.secrets_key.get_secret_value().strip():
        return SecretBox(parse_key(settings.secrets_key.get_secret_value()))
    return SecretBox.load_or_create(settings.secrets_key_path)  # dev and test: prod requires SECRETS_KEY


def build_webhooks(settings: Settings, goals: GoalsApp, store: ReadStore, outbound: OutboundClient) -> Webhooks:
    rows = WebhookDeliveries(store)
    subscriptions = WebhooksService(
        goals, secret_box(settings), lambda url: refusal(outbound, url), new_secret, rows.live_count
    )
    policy = RetryPolicy(
        first_s=settings.webhook_retry_first_s,
        max_s=max(MAX_RETRY_BACKOFF_S, settings.webhook_retry_first_s),
        retry_for_s=settings.webhook_retry_for_s,
        max_attempts=settings.webhook_max_attempts,
    )
    delivery = DeliveryService(
        rows, GuardedWebhookSender(outbound), subscriptions.endpoint, policy, on_outcome=_count
    )
    return Webhooks(subscriptions, delivery, rows)


def send_lanes(jobs: Jobs, lanes: Iterable[tuple[str, str]]) -> None:
    """Queue a delivery job for each lane, but for one already queued or running."""
    for subscription_id, agent_id in lanes:
        jobs.send_once(
            DELIVER_WEBHOOKS,
            {"subscription_id": subscription_id, "agent_id": agent_id},
            key=lane_key(subscription_id, agent_id),
        )


def _count(outcome: Outcome) -> None:
    DELIVERIES.labels(outcome).inc()
