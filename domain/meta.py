"""Who asked for a change, and in which request: what every event of every aggregate records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Meta:
    actor: str
    request_id: str = ""
    idempotency_key: str | None = None


def meta_fields(meta: Meta) -> dict[str, Any]:
    """The event fields that carry `meta`."""
    return {"actor": meta.actor, "request_id": meta.request_id, "idempotency_key": meta.idempotency_key}
