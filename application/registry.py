"""The registry's use cases: register, update, change visibility, deregister an agent's card.

A card comes inline or from its `card_url` (fetched through the system's one outbound guard),
is checked against the A2A spec, hashed in its RFC 8785 form and its own signatures verified,
all before the command loop; the aggregate then decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.domain import Aggregate

from application.command_loop import Idempotency
from application.goals import GoalsApp
from application.json_encoding import encode_json
from application.kinds import Kind
from application.preconditions import IfMatch
from application.results import CommandResult
from domain.cards import MAX_CARD_BYTES
from domain.errors import DomainError, InvalidCommand
from domain.ids import registered_agent_id
from domain.meta import Meta
from domain.registry import AgentDeregisteredError, RegisteredAgent, SubmittedCard


class AgentNotFound(Exception):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"no registered agent {agent_id!r}")
        self.agent_id = agent_id


class CardUnavailable(Exception):
    """The card could not be fetched from its `card_url` (refused target, down, not JSON...)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the card at {url} could not be fetched: {reason}")
        self.url = url
        self.reason = reason


class SignedCardRequired(DomainError):
    def __init__(self, state: str) -> None:
        super().__init__(f"this registry accepts only cards whose signature verifies (this one is {state})")
        self.state = state


class TooManyAgents(DomainError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"this client has registered {limit} agents, the most it may (MAX_AGENTS_PER_CLIENT)")
        self.limit = limit


REGISTRY = Kind("registered agent", RegisteredAgent, registered_agent_id, AgentNotFound)


@dataclass(frozen=True)
class Signature:
    state: str  # verified | invalid | unsigned
    detail: str = ""


class CardChecks(Protocol):
    """What the registry needs to know of a card before it is recorded."""

    def problems(self, card: object) -> dict[str, str]:
        """Every wrong field path of the card (`card.skills.0.tags`), against the A2A spec."""
        ...

    def card_hash(self, card: Mapping[str, Any]) -> str: ...

    def verify(self, tenant: str, card: Mapping[str, Any], card_url: str | None = None) -> Signature:
        """The card's own signatures (A2A §8.4): verified, invalid or unsigned."""
        ...


class CardFetcher(Protocol):
    def fetch(self, url: str) -> object:
        """The JSON at `url`, through the outbound guard; CardUnavailable otherwise."""
        ...


@dataclass(frozen=True)
class CardSource:
    """Exactly one of an inline card or the URL to fetch it from."""

    card: Mapping[str, Any] | None = None
    card_url: str | None = None


class RegistryService:
    """Commands on registered agents. Every agent lives in the one log with its goals."""

    def __init__(
        self,
        app: GoalsApp,
        checks: CardChecks,
        fetcher: CardFetcher,
        *,
        require_signed: bool = False,
        max_agents_per_client: int = 0,
        registered_by: Callable[[str, str], int] | None = None,
    ) -> None:
        self._app = app
        self._checks = checks
        self._fetcher = fetcher
        self._require_signed = require_signed
        self._max_agents = max_agents_per_client
        self._registered_by = registered_by

    def register(
        self,
        tenant: str,
        agent_id: str,
        source: CardSource,
        visibility: str,
        meta: Meta,
        *,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Register an agent (201), or register again one that was deregistered."""
        # A retry is answered before anything is fetched or counted again.
        if (replay := self._app.replayed(tenant, meta.actor, idempotency)) is not None:
            return replay
        submitted = self._submitted(tenant, source)

        def change(loaded: dict[str, Any]) -> Sequence[Aggregate]:
            agent: RegisteredAgent | None = loaded[agent_id]
            if agent is None or agent.deregistered:
                self._check_quota(tenant, meta.actor)
            if agent is None:
                return [RegisteredAgent.register(tenant, agent_id, submitted, visibility, meta)]
            agent.register_again(submitted, visibility, meta)
            return [agent]

        return self._app.execute(
            tenant, [agent_id], change, meta, None, idempotency, create=True, kind=REGISTRY
        )

    def update(
        self,
        tenant: str,
        agent_id: str,
        source: CardSource | None,
        visibility: str | None,
        meta: Meta,
        *,
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Take a new card and/or visibility; what did not change writes nothing."""
        if source is None and visibility is None:
            raise InvalidCommand({"card": "give a card, a card_url or a visibility to change"})
        if (replay := self._app.replayed(tenant, meta.actor, idempotency)) is not None:
            return replay
        submitted = self._submitted(tenant, source) if source is not None else None

        def change(loaded: dict[str, Any]) -> Sequence[Aggregate]:
            agent = _existing(loaded, agent_id)
            if submitted is not None:
                agent.update_card(submitted, meta)
            if visibility is not None:
                agent.change_visibility(visibility, meta)
            return [agent]

        return self._app.execute(
            tenant, [agent_id], change, meta, expected_version, idempotency, kind=REGISTRY
        )

    def deregister(
        self,
        tenant: str,
        agent_id: str,
        meta: Meta,
        *,
        reason: str = "",
        expected_version: int | IfMatch | None = None,
        idempotency: Idempotency | None = None,
    ) -> CommandResult:
        """Remove the agent from the registry; its history stays in the log."""

        def change(loaded: dict[str, Any]) -> Sequence[Aggregate]:
            agent = _existing(loaded, agent_id)
            agent.deregister(reason, meta)
            return [agent]

        return self._app.execute(
            tenant, [agent_id], change, meta, expected_version, idempotency, kind=REGISTRY
        )

    def _submitted(self, tenant: str, source: CardSource) -> SubmittedCard:
        if (source.card is None) == (source.card_url is None):
            raise InvalidCommand({"card": "give exactly one of card and card_url"})
        card: object = source.card
        if source.card_url is not None:
            card = self._fetcher.fetch(source.card_url)
        if problems := self._checks.problems(card):
            raise InvalidCommand(problems)
        assert isinstance(card, Mapping)
        if len(encode_json(card)) > MAX_CARD_BYTES:
            raise InvalidCommand({"card": f"must be at most {MAX_CARD_BYTES} bytes of JSON"})
        signature = self._checks.verify(tenant, card, source.card_url)
        if self._require_signed and signature.state != "verified":
            raise SignedCardRequired(signature.state)
        return SubmittedCard(
            dict(card),
            self._checks.card_hash(card),
            card_url=source.card_url,
            signature=signature.state,
            signature_detail=signature.detail,
        )

    def _check_quota(self, tenant: str, actor: str) -> None:
        count = self._registered_by
        if self._max_agents and count is not None and count(tenant, actor) >= self._max_agents:
            raise TooManyAgents(self._max_agents)


def _existing(loaded: dict[str, Any], agent_id: str) -> RegisteredAgent:
    agent: RegisteredAgent | None = loaded[agent_id]
    if agent is None:
        raise AgentNotFound(agent_id)
    if agent.deregistered:
        # A domain refusal, so that a cached copy is read again from the log before it is
        # answered (another replica may have registered the agent again).
        raise AgentDeregisteredError(agent_id)
    return agent
