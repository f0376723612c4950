"""The RegisteredAgent aggregate: one agent's record in a tenant's registry.

The card is kept exactly as submitted (the registry serves the spec's forms of it, and the
original on request); what makes it acceptable is checked before any event exists: the
card's own rules by `check_card` (called by the application, which also hashes and verifies
it), and here what the record needs: a visibility, storable JSON, a state that allows the change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eventsourcing.domain import Aggregate

from domain.cards import card_problems
from domain.errors import DomainError, InvalidCommand
from domain.ids import TENANT, registered_agent_id
from domain.limits import MAX_REASON, MAX_URL, text_problem
from domain.meta import Meta, meta_fields

VISIBILITIES = frozenset({"private", "public"})
SIGNATURE_STATES = frozenset({"verified", "invalid", "unsigned"})
MAX_SIGNATURE_DETAIL = 500
MAX_REACHABILITY_ERROR = 500  # domain.reachability.MAX_ERROR
Visibility = Literal["private", "public"]


class AgentDeregisteredError(DomainError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id!r} was deregistered; register it again to change it")
        self.agent_id = agent_id


class AgentAlreadyRegistered(DomainError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id!r} is already registered")
        self.agent_id = agent_id


@dataclass(frozen=True)
class SubmittedCard:
    """A card as submitted, with what the application learnt of it: its hash (RFC 8785 form),
    where it came from, and whether its own signatures verified."""

    card: Mapping[str, Any]
    card_hash: str
    card_url: str | None = None
    signature: str = "unsigned"
    signature_detail: str = ""

    def problems(self) -> dict[str, str]:
        problems = card_problems(self.card, prefix="card")
        if self.card_url is not None and (p := text_problem(self.card_url, MAX_URL, required=True)):
            problems["card_url"] = p
        if self.signature not in SIGNATURE_STATES:
            problems["signature"] = f"must be one of {', '.join(sorted(SIGNATURE_STATES))}"
        if p := text_problem(self.signature_detail, MAX_SIGNATURE_DETAIL):
            problems["signature_detail"] = p
        return problems

    def fields(self) -> dict[str, Any]:
        return {
            "card": dict(self.card),
            "card_hash": self.card_hash,
            "card_url": self.card_url,
            "signature": self.signature,
            "signature_detail": self.signature_detail,
        }


class RegisteredAgent(Aggregate):
    """An agent in the registry, changed only by its events."""

    class Event(Aggregate.Event):
        tenant: str
        agent_id: str
        actor: str
        request_id: str
        idempotency_key: str | None

    class AgentRegistered(Event, Aggregate.Created):
        card: dict[str, Any]
        card_hash: str
        card_url: str | None
        signature: str
        signature_detail: str
        visibility: str

    class AgentReregistered(Event):
        """Registered again after a deregistration: the record starts over, its history stays."""

        card: dict[str, Any]
        card_hash: str
        card_url: str | None
        signature: str
        signature_detail: str
        visibility: str

        def apply(self, agent: RegisteredAgent) -> None:
            agent._take(self.card, self.card_hash, self.card_url, self.signature, self.signature_detail)
            agent.visibility = self.visibility
            agent.deregistered = False
            agent.registered_by = self.actor
            agent.reachable = None  # a new record: not checked yet

    class AgentCardUpdated(Event):
        card: dict[str, Any]
        card_hash: str
        card_url: str | None
        signature: str
        signature_detail: str

        def apply(self, agent: RegisteredAgent) -> None:
            agent._take(self.card, self.card_hash, self.card_url, self.signature, self.signature_detail)

    class AgentVisibilityChanged(Event):
        visibility: str
        previous: str

        def apply(self, agent: RegisteredAgent) -> None:
            agent.visibility = self.visibility

    class AgentDeregistered(Event):
        reason: str

        def apply(self, agent: RegisteredAgent) -> None:
            agent.deregistered = True

    class ReachabilityChanged(Event):
        """The agent's own card URL answered, or stopped answering (`error` says how): recorded
        when that changes, never once per check."""

        reachable: bool
        error: str
        url: str

        def apply(self, agent: RegisteredAgent) -> None:
            agent.reachable = self.reachable

    def __init__(
        self,
        tenant: str,
        agent_id: str,
        actor: str,
        request_id: str,
        idempotency_key: str | None,
        card: dict[str, Any],
        card_hash: str,
        card_url: str | None,
        signature: str,
        signature_detail: str,
        visibility: str,
    ) -> None:
        self.tenant = tenant
        self.agent_id = agent_id
        self.registered_by = actor
        self.visibility = visibility
        self.deregistered = False
        self.reachable: bool | None = None  # not checked yet
        self._take(card, card_hash, card_url, signature, signature_detail)

    def _take(
        self, card: dict[str, Any], card_hash: str, card_url: str | None, signature: str, detail: str
    ) -> None:
        self.card = card
        self.card_hash = card_hash
        self.card_url = card_url
        self.signature = signature
        self.signature_detail = detail

    # --- commands -------------------------------------------------------------------------

    @classmethod
    def register(
        cls, tenant: str, agent_id: str, submitted: SubmittedCard, visibility: str, meta: Meta
    ) -> RegisteredAgent:
        _check(submitted, visibility)
        if not TENANT.match(tenant):
            raise InvalidCommand({"tenant": "letters, digits, '_', '.' or '-', at most 64 (no ':')"})
        return cls._create(
            cls.AgentRegistered,
            id=registered_agent_id(tenant, agent_id),
            tenant=tenant,
            agent_id=agent_id,
            visibility=visibility,
            **submitted.fields(),
            **meta_fields(meta),
        )

    def register_again(self, submitted: SubmittedCard, visibility: str, meta: Meta) -> None:
        """A deregistered agent registered anew; a registered one is refused (409)."""
        if not self.deregistered:
            raise AgentAlreadyRegistered(self.agent_id)
        _check(submitted, visibility)
        self._trigger(self.AgentReregistered, meta, visibility=visibility, **submitted.fields())

    def update_card(self, submitted: SubmittedCard, meta: Meta) -> bool:
        """Take a new card; the same card from the same place (by hash) writes nothing.
        Whether an event was written."""
        self._check_live()
        _check(submitted, self.visibility)
        if submitted.card_hash == self.card_hash and submitted.card_url == self.card_url:
            return False
        self._trigger(self.AgentCardUpdated, meta, **submitted.fields())
        return True

    def change_visibility(self, visibility: str, meta: Meta) -> bool:
        self._check_live()
        if visibility not in VISIBILITIES:
            raise InvalidCommand({"visibility": "must be private or public"})
        if visibility == self.visibility:
            return False
        self._trigger(self.AgentVisibilityChanged, meta, visibility=visibility, previous=self.visibility)
        return True

    def deregister(self, reason: str, meta: Meta) -> None:
        self._check_live()
        if problem := text_problem(reason, MAX_REASON):
            raise InvalidCommand({"reason": problem})
        self._trigger(self.AgentDeregistered, meta, reason=reason)

    def record_reachability(self, reachable: bool, error: str, url: str, meta: Meta) -> bool:
        """The outcome of a check of the agent's card URL; an event only when it differs from
        the last one recorded (the first check records one). A deregistered agent is not
        checked: its outcome is dropped. Whether an event was written."""
        if self.deregistered or reachable == getattr(self, "reachable", None):
            return False
        problems = {
            name: problem
            for name, problem in (
                ("error", text_problem(error, MAX_REACHABILITY_ERROR)),
                ("url", text_problem(url, MAX_URL, required=True)),
            )
            if problem is not None
        }
        if problems:
            raise InvalidCommand(problems)
        self._trigger(self.ReachabilityChanged, meta, reachable=reachable, error=error, url=url)
        return True

    def _check_live(self) -> None:
        if self.deregistered:
            raise AgentDeregisteredError(self.agent_id)

    def _trigger(self, event_class: type[RegisteredAgent.Event], meta: Meta, **kwargs: Any) -> None:
        self.trigger_event(
            event_class, tenant=self.tenant, agent_id=self.agent_id, **meta_fields(meta), **kwargs
        )


def _check(submitted: SubmittedCard, visibility: str) -> None:
    problems = submitted.problems()
    if visibility not in VISIBILITIES:
        problems["visibility"] = "must be private or public"
    if problems:
        raise InvalidCommand(problems)
