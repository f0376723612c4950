"""Reachability of registered agents: each agent's own card URL is fetched (through the one
outbound guard) and the outcome recorded on its registry record, as an event only when it
changes (RegisteredAgent.ReachabilityChanged); when it was checked goes to a read-side table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from eventsourcing.domain import Aggregate

from application.goals import GoalsApp
from application.registry import REGISTRY
from domain.meta import Meta
from domain.reachability import card_check_url, error_text
from domain.registry import RegisteredAgent

CHECKER = Meta(actor="reachability")


class CardProbe(Protocol):
    def probe(self, url: str) -> str | None:
        """None when `url` answers a JSON document with a 2xx status; else what went wrong
        (its kind first: `timeout: ...`), without what the guard learnt of internal addresses."""
        ...


class ReachabilityReads(Protocol):
    def card(self, tenant: str, agent_id: str) -> Mapping[str, Any] | None:
        """The card of the tenant's live agent (None: unknown or deregistered)."""
        ...

    def checked(self, tenant: str, agent_id: str, at: datetime) -> None:
        """Record when the agent was last checked."""
        ...


class ReachabilityService:
    """Checks one agent at a time; the scheduler sends a check of every live agent."""

    def __init__(
        self,
        app: GoalsApp,
        probe: CardProbe,
        reads: ReachabilityReads,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._app = app
        self._probe = probe
        self._reads = reads
        self._clock = clock

    def check(self, tenant: str, agent_id: str) -> bool | None:
        """Check the agent's card URL and record the outcome; whether it answered (None: the
        agent is gone, or its card names no http(s) interface to check)."""
        card = self._reads.card(tenant, agent_id)
        url = card_check_url(card) if card is not None else None
        if url is None:
            return None
        error = self._probe.probe(url)
        reachable = error is None
        checked_at = self._clock()

        def change(loaded: dict[str, Any]) -> Sequence[Aggregate]:
            agent: RegisteredAgent | None = loaded[agent_id]
            if agent is None:
                return []
            agent.record_reachability(reachable, error_text(error or ""), url, CHECKER)
            return [agent]

        self._app.execute(tenant, [agent_id], change, CHECKER, None, None, kind=REGISTRY)
        self._reads.checked(tenant, agent_id, checked_at)
        return reachable
