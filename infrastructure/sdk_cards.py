"""AgentCards as the A2A SDK reads them: its protobuf AgentCard, and the bytes it signs.

The SDK's signer and verifier (``a2a.utils.signing``) canonicalise neither the card's JSON as
submitted nor the specification's presence-aware form, but their own: the card read into the
protobuf AgentCard (``parse_agent_card``: v0.3 fields mapped forward, unknown fields dropped),
written back with ``MessageToDict`` (so defaults of fields without presence are gone), without
`signatures`, then with every empty string, list and object dropped, recursively, then RFC 8785.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from a2a.client.card_resolver import parse_agent_card
from a2a.types import AgentCard
from google.protobuf.json_format import MessageToDict, ParseError

from infrastructure.jcs import canonical

__all__ = ["CardNotConvertible", "sdk_card", "sdk_payload"]


class CardNotConvertible(ValueError):
    """A card the A2A SDK cannot read as an AgentCard of its generation (check it with
    :func:`domain.cards.card_problems` first)."""


def sdk_card(card: Mapping[str, Any]) -> AgentCard:
    """The card as the A2A SDK's client reads it (v0.3 fields mapped forward)."""
    try:
        # parse_agent_card rewrites the dict it is given, hence the copy.
        return parse_agent_card(copy.deepcopy(dict(card)))
    except (ParseError, ValueError) as exc:
        raise CardNotConvertible("not an AgentCard the A2A SDK can read") from exc


def sdk_payload(card: Mapping[str, Any]) -> bytes:
    """The bytes the A2A SDK signs and verifies for a card (see the module's docstring)."""
    unsigned = {key: value for key, value in card.items() if key != "signatures"}
    return canonical(_without_empty(MessageToDict(sdk_card(unsigned))))


def _without_empty(value: Any) -> Any:
    """The SDK's clean-up before canonicalising: empty strings, lists and objects are dropped,
    recursively (an object or list emptied by that is dropped too); None stands for dropped."""
    if isinstance(value, dict):
        kept = {k: v for k, v in ((k, _without_empty(v)) for k, v in value.items()) if v is not None}
        return kept or None
    if isinstance(value, list):
        items = [v for v in (_without_empty(item) for item in value) if v is not None]
        return items or None
    if isinstance(value, str) and not value:
        return None
    return value
