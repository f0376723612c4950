"""The goals use cases: load, ask the aggregate, save. Rules live in the domain."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import InfrastructureFactory, JSONTranscoder, Mapper, Recording, Transcoder

from application.command_loop import CommandLoop, Idempotency
from application.errors import BatchRefused, GoalsNotFound
from application.ports import PositionLookup
from application.preconditions import IfMatch
from application.results import CommandResult
from application.transcodings import FastJSONTranscoder, register_domain_transcodings
from domain.errors import DomainError, InvalidCommand
from domain.goals import AgentGoals, AutoUpdate
from domain.ids import goals_id
from domain.meta import Meta
from domain.objectives import GoalDefinition

log = logging.getLogger(__name__)

Loaded = dict[str, AgentGoals | None]
# Makes the mapper between events and stored rows when payloads are encrypted (the port an
# infrastructure adapter fills; the library's own Mapper otherwise).
PayloadMapper = Callable[[InfrastructureFactory[Any], Transcoder], Mapper[UUID]]


@dataclass(frozen=True)
class ProgressUpdate:
    agent_id: str
    objective_progress: Mapping[str, float] = field(default_factory=dict)
    kpi_values: Mapping[str, float] = field(default_factory=dict)
    overall_progress: float | None = None
    observed_at: datetime | None = None


class GoalsApp(CommandLoop):
    """The write side: every aggregate of the system lives in this one log, so a log
    position means the same thing to every read model."""

    name = "a2a"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        snapshot_interval: int = 100,
        max_retries: int = 8,
        position_of: PositionLookup | None = None,
        on_saved: Callable[[int], None] | None = None,
        version_hint: Callable[[str, str, datetime], int | None] | None = None,
        payload_mapper: PayloadMapper | None = None,
    ) -> None:
        # Read by construct_mapper, which the library calls while constructing the app.
        self._payload_mapper = payload_mapper
        # Per instance, so the interval is a setting rather than a constant.
        self.snapshotting_intervals = (  # type: ignore[misc]
            {AgentGoals: snapshot_interval} if snapshot_interval else {}
        )
        env = {**(env or {}), "IS_SNAPSHOTTING_ENABLED": "y" if snapshot_interval else "n"}
        super().__init__(env, max_retries=max_retries, position_of=position_of)
        self._on_saved = on_saved
        self._version_hint = version_hint

    def construct_mapper(self) -> Mapper[UUID]:
        if self._payload_mapper is None:
            return super().construct_mapper()
        return self._payload_mapper(self.factory, self.construct_transcoder())

    def construct_transcoder(self) -> Transcoder:
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder)

    # --- commands ------------------------------------------------------------------------

    def set_goals(
        self,
        tenant: str,
        agent_id: str,
        definition: GoalDefinition,
        meta: Meta,
        *,
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Set an agent's first goals, or revise them (the goal version increments)."""
        if problems := definition.problems():
            raise InvalidCommand(problems)  # whatever the goal's state: refused before any load

        def change(loaded: Loaded) -> list[AgentGoals]:
            goals = loaded[agent_id]
            if goals is None:
                return [AgentGoals.start(tenant, agent_id, definition, meta)]
            goals.set_goals(definition, meta)
            return [goals]

        return self.execute(tenant, [agent_id], change, meta, expected_version, idempotency, create=True)

    def record_progress(
        self,
        tenant: str,
        update: ProgressUpdate,
        meta: Meta,
        *,
        source: str = "manual",
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Record objective progress and/or KPI values; milestones crossed are saved with it."""

        def change(loaded: Loaded) -> list[AgentGoals]:
            goals = _existing(loaded, update.agent_id)
            _apply_progress(goals, update, meta, source)
            return [goals]

        return self.execute(tenant, [update.agent_id], change, meta, expected_version, idempotency)

    def record_progress_batch(
        self,
        tenant: str,
        updates: Sequence[ProgressUpdate],
        meta: Meta,
        *,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Many agents' progress in one transaction: all of it is recorded, or none."""
        if not updates:
            raise InvalidCommand({"updates": "at least one update is required"})
        agent_ids = list(dict.fromkeys(u.agent_id for u in updates))

        def change(loaded: Loaded) -> list[AgentGoals]:
            errors: dict[str, str] = {}
            refused: set[str] = set()
            for i, update in enumerate(updates):
                goals = loaded[update.agent_id]
                if goals is None:
                    errors[f"updates.{i}.agent_id"] = f"no goals for agent {update.agent_id!r}"
                    continue
                try:
                    _apply_progress(goals, update, meta, "bulk")
                except InvalidCommand as e:
                    errors.update({f"updates.{i}.{k}": v for k, v in e.errors.items()})
                    refused.add(update.agent_id)
                except DomainError as e:
                    errors[f"updates.{i}"] = str(e)
                    refused.add(update.agent_id)
            if errors:
                raise BatchRefused(errors, refused)
            return [g for g in loaded.values() if g is not None]

        return self.execute(tenant, agent_ids, change, meta, None, idempotency)

    def change_status(
        self,
        tenant: str,
        agent_id: str,
        status: str,
        reason: str,
        meta: Meta,
        *,
        reopen: bool = False,
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Move a goal through its status machine (reopening a closed goal must be explicit)."""

        def change(loaded: Loaded) -> list[AgentGoals]:
            goals = _existing(loaded, agent_id)
            goals.change_status(status, reason, meta, reopen=reopen)
            return [goals]

        return self.execute(tenant, [agent_id], change, meta, expected_version, idempotency)

    def configure_auto_update(
        self,
        tenant: str,
        agent_id: str,
        config: AutoUpdate,
        meta: Meta,
        *,
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Store how the collector should poll this agent's health and metrics."""

        def change(loaded: Loaded) -> list[AgentGoals]:
            goals = _existing(loaded, agent_id)
            goals.configure_auto_update(config, meta)
            return [goals]

        return self.execute(tenant, [agent_id], change, meta, expected_version, idempotency)

    def current(self, tenant: str, agent_id: str) -> AgentGoals | None:
        """The agent's goals as this process knows them (maybe cached): for reading a
        configuration, never for deciding a change (`execute` does that)."""
        found: AgentGoals | None = self._load(tenant, agent_id)
        return found

    # --- the log, for the read side ---------------------------------------------------------

    def read_log(self, after: int, limit: int) -> list[tuple[int, Any]]:
        """Up to `limit` events recorded after log position `after`, with their positions."""
        select_page = getattr(self.recorder, "select_page", None)
        notifications = (
            select_page(after, limit)
            if select_page is not None
            else self.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
        )
        return [(n.id, self.mapper.to_domain_event(n)) for n in notifications]

    def log_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    # --- audit replay --------------------------------------------------------------------

    def goals_at(
        self, tenant: str, agent_id: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> AgentGoals:
        """The aggregate as it was at a version or instant, rebuilt from the log.

        This is the one query that reads the log instead of a read model, on purpose: it is
        the audit replay, and it uses the nearest snapshot at or before the point.
        """
        aggregate_id = goals_id(tenant, agent_id)
        if as_of is not None and as_of.utcoffset() is None:
            raise InvalidCommand(
                {"as_of": "must carry a time zone offset (RFC 3339), e.g. 2026-11-20T12:00:00Z"}
            )
        if as_of is not None:
            found = self._at_hinted_version(tenant, agent_id, as_of) or self._at_instant(aggregate_id, as_of)
            if found is None:
                raise GoalsNotFound(agent_id)
            return found
        if version is None:
            self._forget(tenant, [agent_id])  # the replay reads the log, not a cached copy
        try:
            goals: AgentGoals = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            raise GoalsNotFound(agent_id) from None
        if version is not None and goals.version != version:
            raise GoalsNotFound(agent_id)
        return goals

    def _at_hinted_version(self, tenant: str, agent_id: str, as_of: datetime) -> AgentGoals | None:
        """Replay to the version a read model says was current at `as_of`, but only if the log
        agrees: that version's event is at or before `as_of` and the next one is after it."""
        if self._version_hint is None:
            return None
        version = self._version_hint(tenant, agent_id, as_of)
        if version is None:
            return None
        aggregate_id = goals_id(tenant, agent_id)
        around = list(self.events.get(aggregate_id, gt=version - 1, limit=2))
        if not around or around[0].originator_version != version:
            return None
        if cast("AgentGoals.Event", around[0]).timestamp > as_of:
            return None
        if len(around) > 1 and cast("AgentGoals.Event", around[1]).timestamp <= as_of:
            return None  # the read model is behind the log: replay the slow, certain way
        goals: AgentGoals = self.repository.get(aggregate_id, version=version)
        return goals

    def _at_instant(self, aggregate_id: UUID, as_of: datetime) -> AgentGoals | None:
        """Fold events up to `as_of`, starting from the newest snapshot taken by then."""
        goals: AgentGoals | None = None
        after: int | None = None
        if self.snapshots is not None:
            for snapshot in self.snapshots.get(aggregate_id, desc=True):
                if cast("AgentGoals.Event", snapshot).timestamp <= as_of:
                    goals = cast("AgentGoals", snapshot.mutate(None))  # type: ignore[attr-defined]
                    after = snapshot.originator_version
                    break
        for event in cast("Iterable[AgentGoals.Event]", self.events.get(aggregate_id, gt=after)):
            if event.timestamp > as_of:
                break
            goals = cast("AgentGoals", event.mutate(goals))
        return goals

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # The events are committed by now: a snapshot that cannot be written must not turn
        # an acknowledged command into an error (a client would retry it). Loads stay correct
        # without it, only slower.
        try:
            super()._take_snapshots(processing_event)
        except Exception:
            log.exception("snapshot not taken; events are saved")

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if self.on_events is not None:
            self.on_events([type(r.domain_event).__qualname__ for r in recordings])
        if self._on_saved is not None and recordings:
            self._on_saved(max(r.notification.id for r in recordings))


def _existing(loaded: Loaded, agent_id: str) -> AgentGoals:
    goals = loaded[agent_id]
    if goals is None:
        raise GoalsNotFound(agent_id)
    return goals


def _apply_progress(goals: AgentGoals, update: ProgressUpdate, meta: Meta, source: str) -> None:
    goals.record_progress(
        meta,
        objective_progress=update.objective_progress,
        kpi_values=update.kpi_values,
        overall_progress=update.overall_progress,
        source=source,
        observed_at=update.observed_at,
    )
