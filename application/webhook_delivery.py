"""Sending webhook deliveries: one lane (a subscription and an agent) at a time, in log order.
A delivery that fails is tried again later (RetryPolicy) and the lane waits for it; one that
has failed for good (or whose subscription is gone) lets the lane go on. Every attempt is
recorded with its time, its answer's status or the kind of error, and how long it took."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from application.webhooks import Endpoint
from domain.webhooks import RetryPolicy, SealedSecretUnreadable

Outcome = Literal["delivered", "retrying", "failed"]
# How long one lane job goes on sending (a delivery started by then is finished, within the
# outbound timeout); the next dispatch goes on with the rest. The job's time limit is well
# above it, and bounds how long a job lost with its worker keeps the lane waiting.
LANE_BUDGET_S = 60.0


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    tenant: str
    subscription_id: str
    agent_id: str
    body: str
    created_at: float
    attempts: int
    next_attempt_at: float
    request_id: str = ""  # of the request that wrote the event, if any


@dataclass(frozen=True)
class Attempt:
    at: float
    status_code: int | None
    error: str | None  # the outbound error's kind (timeout, unreachable, refused...), or None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Outbox(Protocol):
    """The delivery rows (projections.webhook_deliveries)."""

    def head(self, subscription_id: str, agent_id: str) -> Delivery | None:
        """The lane's oldest pending delivery, if any."""
        ...

    def record(self, delivery: Delivery, attempt: Attempt, outcome: Outcome, next_attempt_at: float | None) -> None:
        ...

    def cancel(self, tenant: str, subscription_id: str) -> None: ...

    def due_lanes(self, now: float, limit: int) -> list[tuple[str, str, str]]:
        """(tenant, subscription, agent) of the lanes whose oldest pending delivery is due."""
        ...


class Sender(Protocol):
    def send(self, endpoint: Endpoint, delivery: Delivery) -> Attempt: ...


class DeliveryService:
    def __init__(
        self,
        outbox: Outbox,
        sender: Sender,
        endpoint: Callable[[str, str], Endpoint | None],
        policy: RetryPolicy,
        *,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """`endpoint(tenant, subscription)`: the live subscription's URL and secret, or None."""
        self._outbox = outbox
        self._sender = sender
        self._endpoint = endpoint
        self._policy = policy
        self._on_outcome = on_outcome
        self._clock = clock
        self._jitter = jitter

    def deliver_lane(self, subscription_id: str, agent_id: str) -> int:
        """Send the lane's due deliveries in order, until one fails or none is due; how many
        were sent. Run one job per lane at a time (the job key sees to it)."""
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < LANE_BUDGET_S:
            delivery = self._outbox.head(subscription_id, agent_id)
            if delivery is None or delivery.next_attempt_at > self._clock():
                break
            try:
                endpoint = self._endpoint(delivery.tenant, subscription_id)
            except SealedSecretUnreadable:
                # SECRETS_KEY changed under it: nothing can be signed. Recorded as an attempt,
                # so that the delivery is retried (the key may come back) and then given up.
                attempt = Attempt(self._clock(), None, "secret_unreadable", 0.0)
            else:
                if endpoint is None:  # deleted while its deliveries waited
                    self._outbox.cancel(delivery.tenant, subscription_id)
                    break
                attempt = self._sender.send(endpoint, delivery)
            sent += 1
            if not self._settle(delivery, attempt):
                break
        return sent

    def due_lanes(self, limit: int = 1000) -> list[tuple[str, str, str]]:
        return self._outbox.due_lanes(self._clock(), limit)

    def _settle(self, delivery: Delivery, attempt: Attempt) -> bool:
        """Record the attempt; whether the lane may go on to its next delivery."""
        if attempt.delivered:
            self._outbox.record(delivery, attempt, "delivered", None)
            self._on_outcome("delivered")
            return True
        later = self._policy.next_attempt(delivery.attempts + 1, delivery.created_at, attempt.at, self._jitter())
        outcome: Outcome = "failed" if later is None else "retrying"
        self._outbox.record(delivery, attempt, outcome, later)
        self._on_outcome(outcome)
        return later is None
