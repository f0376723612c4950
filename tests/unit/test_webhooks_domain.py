"""Webhook subscriptions and the retry rule of their deliveries, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidCommand
from domain.meta import Meta
from domain.webhooks import (
    RetryPolicy,
    SubscriptionDeleted,
    WebhookSubscription,
    delivery_id,
    event_type,
    subscription_problems,
    webhook_subscription_id,
)

META = Meta(actor="c1", request_id="r1")
KEY = "wh_" + "0" * 32


def test_fields_are_refused_by_their_paths() -> None:
    assert subscription_problems("https://example.org/h", ["goals_set"]) == {}
    assert set(subscription_problems("", [])) == {"url", "events"}
    assert set(subscription_problems("https://x", ["goals_set", "nope"])) == {"events.1"}
    assert subscription_problems("https://x", ["goals_set", "goals_set"]) == {"events": "lists an event type twice"}
    with pytest.raises(InvalidCommand) as refused:
        WebhookSubscription.subscribe("t1", KEY, "https://x", ["later"], "aesgcm.v1.k.x", META)
    assert set(refused.value.errors) == {"events.0"}


def test_a_subscription_is_deleted_once() -> None:
    sub = WebhookSubscription.subscribe("t1", KEY, "https://x/h", ["milestone_reached"], "aesgcm.v1.k.x", META)
    assert sub.id == webhook_subscription_id("t1", KEY) != webhook_subscription_id("t2", KEY)
    sub.unsubscribe(META)
    assert sub.deleted
    with pytest.raises(SubscriptionDeleted):
        sub.unsubscribe(META)


def test_log_events_map_to_webhook_types_by_class_name() -> None:
    assert event_type("MilestoneReached") == "milestone_reached"
    assert event_type("MetricsCollectionFailed") == "metrics_collection_failed"
    assert event_type("ProgressRecorded") is None


def test_a_delivery_keeps_its_id_and_ids_differ_per_subscription_and_event() -> None:
    one, two = webhook_subscription_id("t1", KEY), webhook_subscription_id("t2", KEY)
    assert delivery_id(one, 7) == delivery_id(one, 7)
    assert len({delivery_id(one, 7), delivery_id(one, 8), delivery_id(two, 7)}) == 3


POLICY = RetryPolicy(first_s=5, max_s=3600, retry_for_s=86_400, max_attempts=30)


@given(attempts=st.integers(1, 29), elapsed=st.floats(0, 86_400), jitter=st.floats(0, 0.999))
def test_a_retry_comes_later_backs_off_and_never_past_the_bound(attempts: int, elapsed: float, jitter: float) -> None:
    created, now = 1_000_000.0, 1_000_000.0 + elapsed
    at = POLICY.next_attempt(attempts, created, now, jitter)
    if at is None:
        full = min(3600, 5 * 2 ** (attempts - 1))
        assert now + full / 2 > created + 86_400  # given up only when even the earliest retry is too late
        return
    backoff = min(3600, 5 * 2 ** (attempts - 1))
    assert now + backoff / 2 <= at <= now + backoff
    assert at <= created + 86_400


def test_the_backoff_doubles_and_attempts_are_capped() -> None:
    waits = [POLICY.next_attempt(n, 0, 0, 0.0) for n in (1, 2, 3)]
    assert waits == [2.5, 5.0, 10.0]
    assert POLICY.next_attempt(30, 0, 0, 0.0) is None
    assert RetryPolicy(retry_for_s=60).next_attempt(1, 0, 59, 0.5) is None
