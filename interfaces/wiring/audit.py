"""The audit log's parts, wired to the event store: its read model, proofs and verifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification

from application.audit import AuditProofs
from application.audit_verify import AuditVerifier
from application.goals import GoalsApp
from application.ports import ReadStore
from projections.audit_anchors import AuditAnchorQueries
from projections.audit_log import AuditLogProjection
from projections.audit_log_queries import AuditLogQueries


def stored_rows(goals: GoalsApp, first: int, last: int) -> Sequence[Notification]:
    """The event store's rows of positions first..last, as stored (nothing decoded)."""
    return [row for row in rows_after(goals, first - 1, last - first + 1) if row.id <= last]


def rows_after(goals: GoalsApp, after: int, limit: int) -> Sequence[Notification]:
    """Up to `limit` stored rows after position `after` (in binary on PostgreSQL)."""
    select_page = getattr(goals.recorder, "select_page", None)
    if select_page is not None:
        rows: Sequence[Notification] = select_page(after, limit)
        return rows
    return goals.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)


def decoder(goals: GoalsApp) -> Any:
    return goals.mapper.to_domain_event


def audit_projection(goals: GoalsApp) -> AuditLogProjection:
    return AuditLogProjection(lambda first, last: stored_rows(goals, first, last))


def audit_proofs(goals: GoalsApp, store: ReadStore) -> AuditProofs:
    return AuditProofs(
        AuditLogQueries(store),
        lambda first, last: stored_rows(goals, first, last),
        goals.mapper.to_domain_event,
        AuditAnchorQueries(store),
    )


def audit_verifier(goals: GoalsApp, store: ReadStore) -> AuditVerifier:
    return AuditVerifier(
        AuditLogQueries(store), lambda after, limit: rows_after(goals, after, limit), goals.mapper.to_domain_event
    )
