"""A registered agent's history, read from the log: every change of its record, with who
made it, when, and what changed in the card field by field. Like the goals' audit replay,
this reads the log on purpose: the log is the record of what was submitted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast
from uuid import UUID

from application.goals import GoalsApp
from application.registry import AgentNotFound
from domain.ids import registered_agent_id
from domain.registry import RegisteredAgent

MAX_CHANGES = 200  # per event: a card rewritten wholesale says so instead of listing thousands


def card_history(
    app: GoalsApp, tenant: str, agent_id: str, *, after_version: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """Up to `limit` changes after `after_version` of the tenant's own agent, each card change
    diffed against the card before it."""
    aggregate_id = registered_agent_id(tenant, agent_id)
    first = next(iter(app.events.get(aggregate_id, limit=1)), None)
    if first is None or cast(RegisteredAgent.Event, first).tenant != tenant:
        raise AgentNotFound(agent_id)
    card = _card_at(app, aggregate_id, after_version) if after_version else None
    items: list[dict[str, Any]] = []
    for raw in app.events.get(aggregate_id, gt=after_version or None, limit=limit):
        event = cast(RegisteredAgent.Event, raw)
        changes: list[dict[str, Any]] = []
        new_card = getattr(event, "card", None)
        if new_card is not None:
            changes = list(diff(card, new_card, ""))
            card = new_card
        if isinstance(event, RegisteredAgent.AgentVisibilityChanged):
            changes = [{"path": "/visibility", "from": event.previous, "to": event.visibility}]
        elif isinstance(event, RegisteredAgent.ReachabilityChanged):
            changes = [{"path": "/reachable", "to": event.reachable, "error": event.error}]
        elif isinstance(event, RegisteredAgent.AgentDeregistered):
            changes = [{"path": "", "from": "registered", "to": "deregistered", "reason": event.reason}]
        if len(changes) > MAX_CHANGES:
            changes = [*changes[:MAX_CHANGES], {"path": "", "truncated": len(changes) - MAX_CHANGES}]
        items.append(
            {
                "version": event.originator_version,
                "event": type(event).__name__,
                "actor": event.actor,
                "at": event.timestamp.isoformat(),
                "changes": changes,
            }
        )
    return items


def _card_at(app: GoalsApp, aggregate_id: UUID, version: int) -> Any:
    """The card as of `version` (the newest event at or before it that carries one)."""
    for raw in app.events.get(aggregate_id, lte=version, desc=True):
        if (card := getattr(raw, "card", None)) is not None:
            return card
    return None


def diff(before: Any, after: Any, path: str) -> Iterator[dict[str, Any]]:
    """Field-level changes from `before` to `after`, as JSON Pointer paths (RFC 6901)."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            where = f"{path}/{_escape(key)}"
            if key not in after:
                yield {"path": where, "from": before[key]}
            elif key not in before:
                yield {"path": where, "to": after[key]}
            else:
                yield from diff(before[key], after[key], where)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from diff(b, a, f"{path}/{i}")
    elif before != after or type(before) is not type(after):
        change: dict[str, Any] = {"path": path}
        if before is not None:
            change["from"] = before
        change["to"] = after
        yield change


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
