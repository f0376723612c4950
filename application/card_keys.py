"""A tenant's card-signing public keys: set them, and read them for verification. Read from
the log, never a cached copy (they decide what `verified` means)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.errors import ConcurrencyConflict
from application.goals import GoalsApp
from domain.card_keys import CardKeys, card_keys_id
from domain.meta import Meta

ATTEMPTS = 8


@dataclass(frozen=True)
class KeysWritten:
    version: int
    position: int | None  # None: the same keys again, nothing written


class CardKeysService:
    def __init__(self, app: GoalsApp) -> None:
        self._app = app

    def set_keys(self, tenant: str, keys: list[dict[str, Any]], meta: Meta) -> KeysWritten:
        """Replace the tenant's keys (a bounded retry when another writer came first)."""
        for _ in range(ATTEMPTS):
            card_keys = self._load(tenant) or CardKeys.start(tenant, meta)
            if not card_keys.set_keys(keys, meta) and not card_keys.pending_events:
                return KeysWritten(card_keys.version, None)
            try:
                recordings = self._app.save(card_keys)
            except IntegrityError:
                continue
            return KeysWritten(card_keys.version, max(r.notification.id for r in recordings))
        raise ConcurrencyConflict(tenant, ATTEMPTS, kind="card keys of tenant")

    def keys(self, tenant: str) -> list[dict[str, Any]]:
        found = self._load(tenant)
        return list(found.keys) if found is not None else []

    def _load(self, tenant: str) -> CardKeys | None:
        aggregate_id = card_keys_id(tenant)
        cache = self._app.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)
        try:
            found: object = self._app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, CardKeys) and found.tenant == tenant else None
