"""webhook_outbox: the tenants' webhook subscriptions, and a delivery row for every event of
the log a live subscription of the same tenant asked for, written in the page's transaction:
however a process dies, no event is left without its deliveries (at least once).

This is an outbox, not a view: its delivery rows carry what was sent and how it went, which
the log does not hold, and replaying the log would send every event again. So it is never
rebuilt (the composition root leaves it out of the rebuilder). The signing secret is not
here, sealed or not: the sender reads it from the subscription's events.

Log events map to webhook types by their class name (`domain.webhooks.EVENT_TYPES`), so that
events other modules add (MetricsCollectionFailed, GoalStagnant...) are delivered once they
exist; they need `tenant` and `agent_id` fields.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from application.json_encoding import encode_json
from application.ports import Tx
from domain.goals import AgentGoals
from domain.webhooks import WebhookSubscription, delivery_id, event_type, webhook_subscription_id
from projections.event_facts_tables import has_column
from projections.projection import LogPage
from projections.views import definition_json, iso

Lane = tuple[str, str]  # (subscription id, agent id): delivered in log order
# Fields every event carries that are not news to its tenant's subscriber.
META_FIELDS = frozenset(
    {"tenant", "actor", "request_id", "idempotency_key", "originator_id", "originator_version", "timestamp"}
)
DDL = (
    "CREATE TABLE IF NOT EXISTS webhook_subscriptions ("
    " tenant TEXT NOT NULL, subscription_id TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL,"
    " created_at TEXT NOT NULL, created_by TEXT NOT NULL, deleted INTEGER NOT NULL, deleted_at TEXT,"
    " position BIGINT NOT NULL, PRIMARY KEY (tenant, subscription_id))",
    "CREATE TABLE IF NOT EXISTS webhook_deliveries ("
    " delivery_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, subscription_id TEXT NOT NULL,"
    " agent_id TEXT NOT NULL, position BIGINT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL,"
    " status TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, next_attempt_at DOUBLE PRECISION,"
    " attempts INTEGER NOT NULL, finished_at DOUBLE PRECISION, request_id TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_lanes"
    " ON webhook_deliveries (subscription_id, agent_id, position) WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_listed ON webhook_deliveries (tenant, subscription_id, position)",
    "CREATE TABLE IF NOT EXISTS webhook_attempts ("
    " delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL,"
    " status_code INTEGER, error TEXT, duration_ms DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (delivery_id, attempt))",
)


class WebhookOutboxProjection:
    name = "webhook_outbox"
    replay_cost = 1
    tables = ("webhook_subscriptions", "webhook_deliveries", "webhook_attempts")

    def __init__(self, on_new: Callable[[set[Lane]], None] | None = None) -> None:
        """`on_new(lanes)`: called once a page that wrote deliveries is committed (to send them now)."""
        self._on_new = on_new
        self._lanes: set[Lane] = set()
        self._lock = threading.Lock()

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)
        # Outboxes of earlier versions: the request each delivery came from was not kept.
        if not has_column(tx, "webhook_deliveries", "request_id"):
            tx.execute("ALTER TABLE webhook_deliveries ADD COLUMN request_id TEXT NOT NULL DEFAULT ''")

    def apply(self, tx: Tx, events: LogPage) -> None:
        live: dict[str, dict[str, set[str]]] | None = None  # tenant -> subscription -> types
        lanes: set[Lane] = set()
        now = time.time()
        for position, event in events:
            if isinstance(event, WebhookSubscription.Event):
                if live is None:
                    live = _live(tx)
                _subscription(tx, live, position, event)
                continue
            kind = event_type(type(event).__name__)
            if kind is None or not isinstance(getattr(event, "tenant", None), str):
                continue
            if live is None:
                live = _live(tx)
            for subscription, types in live.get(event.tenant, {}).items():
                if kind in types:
                    _deliver(tx, event, kind, subscription, position, now)
                    lanes.add((subscription, str(getattr(event, "agent_id", ""))))
        if lanes:
            with self._lock:
                self._lanes |= lanes

    def committed(self) -> None:
        with self._lock:
            lanes, self._lanes = self._lanes, set()
        if lanes and self._on_new is not None:
            self._on_new(lanes)


def _live(tx: Tx) -> dict[str, dict[str, set[str]]]:
    live: dict[str, dict[str, set[str]]] = {}
    for tenant, subscription, events in tx.fetchall(
        "SELECT tenant, subscription_id, events FROM webhook_subscriptions WHERE deleted = 0"
    ):
        live.setdefault(tenant, {})[subscription] = set(events.split(","))
    return live


def _subscription(
    tx: Tx, live: dict[str, dict[str, set[str]]], position: int, event: WebhookSubscription.Event
) -> None:
    tenant, key, at = event.tenant, event.subscription_id, iso(event.timestamp)
    match event:
        case WebhookSubscription.Subscribed():
            tx.execute(
                "INSERT INTO webhook_subscriptions (tenant, subscription_id, url, events, created_at,"
                " created_by, deleted, position) VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
                " ON CONFLICT (tenant, subscription_id) DO NOTHING",
                (tenant, key, event.url, ",".join(event.events), at, event.actor, position),
            )
            live.setdefault(tenant, {})[key] = set(event.events)
        case WebhookSubscription.Unsubscribed():
            tx.execute(
                "UPDATE webhook_subscriptions SET deleted = 1, deleted_at = ?, position = ?"
                " WHERE tenant = ? AND subscription_id = ?",
                (at, position, tenant, key),
            )
            # Nothing more is sent to it: what was waiting is cancelled.
            tx.execute(
                "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL, finished_at = ?"
                " WHERE subscription_id = ? AND tenant = ? AND status = 'pending'",
                (time.time(), key, tenant),
            )
            live.get(tenant, {}).pop(key, None)


def _deliver(tx: Tx, event: Any, kind: str, subscription: str, position: int, now: float) -> None:
    body = encode_json(
        {"type": kind, "timestamp": iso(event.timestamp), "data": event_data(kind, event)},
        default=str,
        from_log=True,
    ).decode()
    tx.execute(
        "INSERT INTO webhook_deliveries (delivery_id, tenant, subscription_id, agent_id, position,"
        " event_type, body, status, created_at, next_attempt_at, attempts, request_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, 0, ?) ON CONFLICT (delivery_id) DO NOTHING",
        (
            delivery_id(webhook_subscription_id(event.tenant, subscription), position),
            event.tenant,
            subscription,
            str(getattr(event, "agent_id", "")),
            position,
            kind,
            body,
            now,
            now,
            # The request that wrote the event: sent as X-Request-ID, to trace it end to end.
            str(getattr(event, "request_id", "") or ""),
        ),
    )


def event_data(kind: str, event: Any) -> dict[str, Any]:
    """What a delivery tells of an event: its agent and what changed, nothing of who asked."""
    match event:
        case AgentGoals.GoalsSet():
            return {
                "agent_id": event.agent_id,
                "goal_version": event.goal_version,
                "goals": definition_json(event.definition),
            }
        case AgentGoals.MilestoneReached():
            return {
                "agent_id": event.agent_id,
                "objective_id": event.objective_id,
                "threshold": event.threshold,
                "progress": event.progress,
                "goal_version": event.goal_version,
            }
        case AgentGoals.StatusChanged():
            return {
                "agent_id": event.agent_id,
                "from": event.from_status,
                "to": event.to_status,
                "reason": event.reason,
            }
    return {name: value for name, value in _fields(event) if name not in META_FIELDS}


def _fields(event: Any) -> Iterable[tuple[str, Any]]:
    if dataclasses.is_dataclass(event):
        return ((f.name, getattr(event, f.name)) for f in dataclasses.fields(event))
    found: dict[str, Any] = vars(event)
    return found.items()
