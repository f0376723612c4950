"""The command loop every aggregate keyed by (tenant, key) goes through: replay an
idempotent retry, load, check If-Match, apply the change, save with optimistic concurrency,
retry a lost race. A refusal, or "nothing to change", is only ever decided on the log."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from application.errors import BatchRefused, ConcurrencyConflict, VersionMismatch
from application.kinds import GOALS, Keyed, Kind
from application.ports import PositionLookup
from application.preconditions import IfMatch
from application.results import CommandResult, Written
from domain.errors import DomainError
from domain.idempotency import IdempotencyRecord
from domain.ids import idempotency_id
from domain.meta import Meta

# What a command does to the aggregates it loaded (by key; None: not there): those it changed.
Change = Callable[[dict[str, Any]], Sequence[Aggregate]]


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: str


class CommandLoop(Application[UUID]):
    """An application whose commands all go through `execute`."""

    # Told how long each command took (by the kind of aggregate), and the class of every
    # event saved: what the composition root counts in its metrics.
    on_command: Callable[[str, float], None] | None = None
    on_events: Callable[[Sequence[str]], None] | None = None

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        max_retries: int = 8,
        position_of: PositionLookup | None = None,
    ) -> None:
        super().__init__(env)
        self.max_retries = max_retries
        self._position_of = position_of

    def execute(
        self,
        tenant: str,
        agent_ids: list[str],
        change: Change,
        meta: Meta,
        expected_version: int | IfMatch | None,
        idempotency: Idempotency | None,
        *,
        create: bool = False,
        kind: Kind = GOALS,
    ) -> CommandResult:
        """The command loop of every aggregate keyed by (tenant, key): replay an idempotent
        retry, load, apply `change`, save with optimistic concurrency, retry a lost race."""
        started = time.perf_counter()
        try:
            if idempotency is not None and (replay := self._replay(tenant, meta.actor, idempotency)):
                return replay
            expected = IfMatch.version(expected_version) if isinstance(expected_version, int) else expected_version
            for _ in range(self.max_retries):
                loaded, changed = self._decide(kind, tenant, agent_ids, change, expected, create)
                if not any(a.pending_events for a in changed):
                    return self._unchanged(changed)
                result = CommandResult(
                    items=tuple(
                        Written(g.agent_id, g.id, g.version, created=loaded[g.agent_id] is None)
                        for g in cast("Sequence[Keyed]", changed)
                    ),
                    position=0,
                )
                extra: list[IdempotencyRecord] = []
                if idempotency is not None:
                    extra.append(
                        IdempotencyRecord.record(
                            tenant, idempotency.key, idempotency.fingerprint, meta.actor, result.as_record()
                        )
                    )
                try:
                    recordings = self.save(*changed, *extra)
                except IntegrityError:
                    # Someone else wrote first (maybe another process, and our cache is stale).
                    self._forget(tenant, agent_ids, kind)
                    if idempotency is not None and (replay := self._replay(tenant, meta.actor, idempotency)):
                        return replay
                    if expected is not None:
                        current = self._load(tenant, agent_ids[0], kind)
                        raise VersionMismatch(
                            agent_ids[0], expected.describe(), current.version if current else None
                        ) from None
                    continue
                except BaseException:
                    # Unknown outcome (the connection dropped at commit, say): trust the log next time.
                    self._forget(tenant, agent_ids, kind)
                    raise
                return _positioned(result, recordings)
            raise ConcurrencyConflict(agent_ids[0], self.max_retries, kind=kind.noun)
        finally:
            if self.on_command is not None:
                self.on_command(kind.aggregate.__name__, time.perf_counter() - started)

    def _unchanged(self, aggregates: Sequence[Aggregate]) -> CommandResult:
        """What a command that changed nothing answers (the same card again, say): nothing is
        written, and the position is where the current versions were recorded, so that a
        read with `min_position` sees them."""
        items = tuple(
            Written(a.agent_id, a.id, a.version, self._lookup(a.id, a.version))
            for a in cast("Sequence[Keyed]", aggregates)
        )
        return CommandResult(items=items, position=max((w.position or 0 for w in items), default=0))

    def _decide(
        self, kind: Kind, tenant: str, agent_ids: list[str], change: Change, expected: IfMatch | None, create: bool
    ) -> tuple[dict[str, Any], Sequence[Aggregate]]:
        """Load the aggregates, check the precondition and apply the change: the aggregates
        as loaded, and those changed. Loads may come from the cache, which trusts its copies;
        but a refusal (a failed precondition, a rule saying no), or a change that changes
        nothing, is only ever given on what the log holds. A stale copy (another process resumed a paused goal, say) is corrected
        when its save fails the version check, but a refused command saves nothing: without
        this, it would refuse forever."""
        decided_on_log = self.repository.cache is None
        while True:
            loaded = {a: self._load(tenant, a, kind) for a in agent_ids}
            first = loaded[agent_ids[0]]
            try:
                if expected is not None:
                    _check_version(kind, agent_ids[0], first, expected, create)
                changed = change(loaded)
            except (DomainError, VersionMismatch) as refusal:
                if decided_on_log:
                    raise
                decided_on_log = True
                # Only the copies refused are read again: the rest of a batch stays cached.
                self._forget(
                    tenant, refusal.agent_ids if isinstance(refusal, BatchRefused) else agent_ids, kind
                )
                continue
            if decided_on_log or any(a.pending_events for a in changed):
                return loaded, changed
            # "Nothing to change" is an answer too, and a stale copy would give it wrongly
            # (made private here, public since on another replica: "private" again is no
            # change to the copy): it is given only on what the log holds.
            decided_on_log = True
            self._forget(tenant, agent_ids, kind)

    def _forget(self, tenant: str, agent_ids: Iterable[str], kind: Kind = GOALS) -> None:
        """Drop cached aggregates, so that the next load reads them from the log."""
        cache = self.repository.cache
        if cache is None:
            return
        for agent_id in agent_ids:
            with contextlib.suppress(KeyError):
                cache.get(kind.aggregate_id(tenant, agent_id), evict=True)

    def _load(self, tenant: str, agent_id: str, kind: Kind = GOALS) -> Any:
        try:
            found: Aggregate = self.repository.get(kind.aggregate_id(tenant, agent_id))
        except AggregateNotFoundError:
            return None
        # Ids are derived from tenant and key; a mismatch would be another tenant's aggregate.
        if not kind.owns(found, tenant, agent_id):
            return None
        return found

    def replayed(self, tenant: str, actor: str, idempotency: Idempotency | None) -> CommandResult | None:
        """The first answer to a command retried with its Idempotency-Key, if there was one
        (for use cases that do work before the command loop: fetches, quotas)."""
        return self._replay(tenant, actor, idempotency) if idempotency is not None else None

    def _replay(self, tenant: str, actor: str, idempotency: Idempotency) -> CommandResult | None:
        record_id = idempotency_id(tenant, actor, idempotency.key)
        try:
            record: IdempotencyRecord = self.repository.get(record_id)
        except AggregateNotFoundError:
            return None
        record.check(idempotency.fingerprint)
        position = self._lookup(record_id, 1) or 0
        return CommandResult.from_record(record.result, self._lookup, position)

    def _lookup(self, aggregate_id: UUID, version: int) -> int | None:
        if self._position_of is None:
            return None
        return self._position_of(self.recorder, aggregate_id, version)


def _check_version(kind: Kind, agent_id: str, found: Aggregate | None, expected: IfMatch, create: bool) -> None:
    actual = found.version if found is not None else None
    if actual is None and not create:
        raise kind.not_found(agent_id)
    if not expected.admits(actual):
        raise VersionMismatch(agent_id, expected.describe(), actual)


def _positioned(result: CommandResult, recordings: list[Recording[UUID]]) -> CommandResult:
    positions: dict[UUID, int] = {}
    for recording in recordings:
        n = recording.notification
        originator = cast(UUID, n.originator_id)
        positions[originator] = max(positions.get(originator, 0), n.id)
    positioned = result.with_positions(positions)
    return CommandResult(items=positioned.items, position=max(positions.values()), extra=result.extra)
