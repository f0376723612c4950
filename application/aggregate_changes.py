"""Changes to aggregates of no tenant (peers, their copies, anchors), loaded from the log as it
is now and saved with optimistic concurrency, a lost race retried on what the log then holds."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from application.errors import ConcurrencyConflict
from application.goals import GoalsApp

CHANGE_ATTEMPTS = 10
A = TypeVar("A", bound=Aggregate)


def change(
    app: GoalsApp, aggregate_id: UUID, kind: type[A], make: Callable[[A | None], A | None]
) -> tuple[A | None, bool]:
    """Load the aggregate from the log (None if there is none) and save what `make` makes of
    it (None: nothing to save); a save that lost a race with another process is made again on
    what the log then holds, a bounded number of times. The aggregate, as saved or else as
    loaded, and whether it was saved."""
    for _ in range(CHANGE_ATTEMPTS):
        found = load(app, aggregate_id, kind)
        changed = make(found)
        if changed is None:
            return found, False
        try:
            app.save(changed)
        except IntegrityError:
            continue
        return changed, True
    raise ConcurrencyConflict(aggregate_id.hex, CHANGE_ATTEMPTS, kind=kind.__name__)


def load(app: GoalsApp, aggregate_id: UUID, kind: type[A]) -> A | None:
    """The aggregate as the log holds it now, not as this process cached it: another process
    (the API, a worker) may have changed it since."""
    cache = app.repository.cache
    if cache is not None:
        with contextlib.suppress(KeyError):
            cache.get(aggregate_id, evict=True)
    try:
        found: object = app.repository.get(aggregate_id)
    except AggregateNotFoundError:
        return None
    return found if isinstance(found, kind) else None


def forget_aggregates(app: GoalsApp) -> None:
    """Drop every aggregate this process holds in its cache (after an erasure: the cache is
    not keyed by tenant, and LRUCache.clear() empties its recency list, not its entries)."""
    cache = app.repository.cache
    if cache is None:
        return
    for aggregate_id in list(cache.cache):
        with contextlib.suppress(KeyError):
            cache.get(aggregate_id, evict=True)
