"""The webhook outbox's rows as the sender and the API use them: the lanes' next deliveries,
the attempts recorded, and the tenant's subscriptions and deliveries, listed. Every query of
a tenant's rows names the tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from application.ports import ReadStore
from application.webhook_delivery import Attempt, Delivery, Outcome

MAX_ERROR = 200
SUBSCRIPTION_COLUMNS = "subscription_id, url, events, created_at, created_by, position"


def _instant(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class WebhookDeliveries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    # --- the sender's --------------------------------------------------------------------

    def head(self, subscription_id: str, agent_id: str) -> Delivery | None:
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT delivery_id, tenant, subscription_id, agent_id, body, created_at, attempts,"
                " next_attempt_at, request_id FROM webhook_deliveries WHERE subscription_id = ? AND agent_id = ?"
                " AND status = 'pending' ORDER BY position LIMIT 1",
                (subscription_id, agent_id),
            )
        return None if row is None else Delivery(*row)

    def record(self, delivery: Delivery, attempt: Attempt, outcome: Outcome, next_attempt_at: float | None) -> None:
        status = "pending" if outcome == "retrying" else outcome
        finished = None if outcome == "retrying" else attempt.at
        with self._store.transaction() as tx:
            tx.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) DO NOTHING",
                (
                    delivery.delivery_id,
                    delivery.attempts + 1,
                    attempt.at,
                    attempt.status_code,
                    (attempt.error or "")[:MAX_ERROR] or None,
                    attempt.duration_ms,
                ),
            )
            # Only while it is pending: a deletion may have cancelled it meanwhile.
            tx.execute(
                "UPDATE webhook_deliveries SET attempts = ?, status = ?, next_attempt_at = ?, finished_at = ?"
                " WHERE delivery_id = ? AND status = 'pending'",
                (delivery.attempts + 1, status, next_attempt_at, finished, delivery.delivery_id),
            )

    def cancel(self, tenant: str, subscription_id: str) -> None:
        with self._store.transaction() as tx:
            tx.execute(
                "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL"
                " WHERE tenant = ? AND subscription_id = ? AND status = 'pending'",
                (tenant, subscription_id),
            )

    def due_lanes(self, now: float, limit: int) -> list[tuple[str, str, str]]:
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT d.tenant, d.subscription_id, d.agent_id FROM webhook_deliveries d JOIN"
                " (SELECT subscription_id, agent_id, MIN(position) AS first FROM webhook_deliveries"
                "  WHERE status = 'pending' GROUP BY subscription_id, agent_id) h"
                " ON d.subscription_id = h.subscription_id AND d.agent_id = h.agent_id AND d.position = h.first"
                " WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?",
                (now, limit),
            )
        return [(r[0], r[1], r[2]) for r in rows]

    # --- the API's -----------------------------------------------------------------------

    def live_count(self, tenant: str) -> int:
        with self._store.read() as tx:
            row = tx.fetchone("SELECT COUNT(*) FROM webhook_subscriptions WHERE tenant = ? AND deleted = 0", (tenant,))
        return int(row[0]) if row else 0

    def subscriptions(self, tenant: str) -> list[dict[str, Any]]:
        with self._store.read() as tx:
            rows = tx.fetchall(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE tenant = ? AND deleted = 0"
                " ORDER BY created_at, subscription_id",
                (tenant,),
            )
        return [_subscription(r) for r in rows]

    def subscription(self, tenant: str, subscription_id: str, *, deleted: bool = False) -> dict[str, Any] | None:
        """One of the tenant's subscriptions (a deleted one too, if `deleted`)."""
        with self._store.read() as tx:
            row = tx.fetchone(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE tenant = ?"
                " AND subscription_id = ? AND deleted <= ?",
                (tenant, subscription_id, 1 if deleted else 0),
            )
        return None if row is None else _subscription(row)

    def deliveries(
        self, tenant: str, subscription_id: str, *, before: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of a subscription's deliveries, newest first, with their attempts; and the
        cursor of the next page (None: the last)."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT delivery_id, agent_id, position, event_type, body, status, created_at,"
                " next_attempt_at, attempts, finished_at FROM webhook_deliveries"
                " WHERE tenant = ? AND subscription_id = ? AND position < ? ORDER BY position DESC LIMIT ?",
                (tenant, subscription_id, before if before is not None else 2**62, limit + 1),
            )
            page = rows[:limit]
            attempts: dict[str, list[dict[str, Any]]] = {r[0]: [] for r in page}
            if page:
                marks = ", ".join("?" * len(page))
                for delivery, number, at, code, error, ms in tx.fetchall(
                    "SELECT delivery_id, attempt, at, status_code, error, duration_ms FROM webhook_attempts"
                    f" WHERE delivery_id IN ({marks}) ORDER BY delivery_id, attempt",
                    [r[0] for r in page],
                ):
                    attempts[delivery].append(
                        {"attempt": number, "at": _instant(at), "status_code": code, "error": error,
                         "duration_ms": round(ms, 3)}
                    )
        items = [
            {
                "id": r[0],
                "agent_id": r[1],
                "position": r[2],
                "type": r[3],
                "payload": orjson.loads(r[4]),
                "status": r[5],
                "created_at": _instant(r[6]),
                "next_attempt_at": _instant(r[7]) if r[5] == "pending" else None,
                "attempt_count": r[8],
                "finished_at": _instant(r[9]),
                "attempts": attempts[r[0]],
            }
            for r in page
        ]
        return items, (page[-1][2] if len(rows) > limit else None)


def _subscription(row: Any) -> dict[str, Any]:
    key, url, events, created_at, created_by, position = row
    return {
        "id": key,
        "url": url,
        "events": events.split(","),
        "created_at": created_at,
        "created_by": created_by,
        "position": position,
    }
