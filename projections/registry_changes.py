"""What an event of the registry does to an agent's entry in a read model that lists agents,
whichever aggregate it comes from: a tenant's RegisteredAgent, or a peer's agent copied here
(FederatedAgent: public, in no tenant, keyed by its own aggregate id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.peers import FederatedAgent
from domain.registry import RegisteredAgent

# The "tenant" of copies of peers' agents: no tenant matches it (tenants start with a letter
# or digit), so a copy can never be, or replace, a local agent.
FEDERATED = ""
Key = tuple[str, str]


@dataclass(frozen=True)
class Listed:
    """The agent's entry is (again) this card and visibility, whatever it was."""

    key: Key
    at: datetime
    card: dict[str, Any]
    visibility: str


@dataclass(frozen=True)
class CardChanged:
    key: Key
    at: datetime
    card: dict[str, Any]


@dataclass(frozen=True)
class VisibilityChanged:
    key: Key
    at: datetime
    visibility: str


@dataclass(frozen=True)
class Unlisted:
    key: Key
    at: datetime


Change = Listed | CardChanged | VisibilityChanged | Unlisted


def registry_change(event: object) -> Change | None:
    """The change `event` makes to an agent's entry; None for events of other aggregates."""
    match event:
        case RegisteredAgent.AgentRegistered() | RegisteredAgent.AgentReregistered():
            return Listed((event.tenant, event.agent_id), event.timestamp, event.card, event.visibility)
        case RegisteredAgent.AgentCardUpdated():
            return CardChanged((event.tenant, event.agent_id), event.timestamp, event.card)
        case RegisteredAgent.AgentVisibilityChanged():
            return VisibilityChanged((event.tenant, event.agent_id), event.timestamp, event.visibility)
        case RegisteredAgent.AgentDeregistered():
            return Unlisted((event.tenant, event.agent_id), event.timestamp)
        case FederatedAgent.FederatedAgentImported() | FederatedAgent.FederatedAgentUpdated():
            return Listed(federated_key(event), event.timestamp, event.card, "public")
        case FederatedAgent.FederatedAgentRemoved():
            return Unlisted(federated_key(event), event.timestamp)
    return None


def federated_key(event: FederatedAgent.Event) -> Key:
    return (FEDERATED, event.originator_id.hex)
