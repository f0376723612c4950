"""AgentCards in and out: their canonical form and hash, their v1.0 and v0.3 JSON forms, and their
signatures (see :mod:`infrastructure.card_signatures`, re-exported here).

The conversions are the A2A SDK's own (``a2a.compat.v0_3.conversions``), so that interfaces,
transports and security schemes map as every SDK client maps them, with two corrections where
the SDK loses what a card says:

- v0.3 -> v1.0: a v0.3 card's ``protocolVersion`` is the version of all its interfaces (as the
  SDK's card resolver reads it); the compat conversion gives the additional ones "0.3".
- v1.0 -> v0.3: the v0.3 form lists the interfaces of a pre-1.0 protocol version (0.x), or, on a
  card that has none, all of them, with the first one's version as ``protocolVersion``; the
  compat conversion refuses a card without a 0.3+ interface and drops 0.2.x ones.

A conversion keeps only what the target generation's AgentCard defines: fields unknown to it
are not carried over.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

from a2a.compat.v0_3 import conversions
from a2a.compat.v0_3 import types as v0_3
from a2a.types import AgentCard, AgentInterface
from google.protobuf.json_format import MessageToDict, ParseError

from domain.cards import generation
from infrastructure.card_signatures import KeyLookup, SignatureCheck, SignatureState, sign_card, verify_card
from infrastructure.jcs import NotCanonicalisable, canonical
from infrastructure.sdk_cards import CardNotConvertible, sdk_card

__all__ = [
    "CardNotConvertible",
    "KeyLookup",
    "NotCanonicalisable",
    "SignatureCheck",
    "SignatureState",
    "as_v0_3",
    "as_v1",
    "canonical",
    "card_hash",
    "sign_card",
    "verify_card",
]

_DEFAULT_LEGACY_VERSION = "0.3.0"  # v0.3's schema default for protocolVersion


def card_hash(card: Mapping[str, Any]) -> str:
    """``"sha256:"`` and the hex SHA-256 of the card's RFC 8785 canonical form (signatures
    included: it identifies the card exactly as submitted)."""
    return "sha256:" + hashlib.sha256(canonical(dict(card))).hexdigest()


def as_v1(card: Mapping[str, Any]) -> dict[str, Any]:
    """The v1.0 JSON form of a card: a v1.0 card unchanged, a v0.3 card converted."""
    if generation(card) == "1.0":
        return copy.deepcopy(dict(card))
    try:
        core = conversions.to_core_agent_card(v0_3.AgentCard.model_validate(card))
    except (ValueError, ParseError) as exc:  # pydantic's ValidationError is a ValueError
        raise CardNotConvertible("not a v0.3 AgentCard the A2A SDK can read") from exc
    version = core.supported_interfaces[0].protocol_version
    for interface in core.supported_interfaces:
        interface.protocol_version = version
    return MessageToDict(core)


def as_v0_3(card: Mapping[str, Any]) -> dict[str, Any]:
    """The v0.3 JSON form of a card: a v0.3 card unchanged, a v1.0 card converted."""
    if generation(card) == "0.3":
        return copy.deepcopy(dict(card))
    core = sdk_card(card)
    legacy = [i for i in core.supported_interfaces if _is_pre_1_0(i.protocol_version)]
    chosen = legacy or list(core.supported_interfaces)
    if not chosen:
        raise CardNotConvertible("a card without interfaces has no v0.3 form")
    # The compat conversion keeps only 0.3+ interfaces; these are all to be kept, so they are
    # handed over as 0.3 and the card's own version is put back afterwards.
    shaped = AgentCard()
    shaped.CopyFrom(core)
    del shaped.supported_interfaces[:]
    shaped.supported_interfaces.extend(
        AgentInterface(url=i.url, protocol_binding=i.protocol_binding, protocol_version="0.3.0")
        for i in chosen
    )
    try:
        legacy_card = conversions.to_compat_agent_card(shaped)
    except ValueError as exc:  # e.g. a security scheme of no known kind
        raise CardNotConvertible("a card the A2A SDK cannot express as v0.3") from exc
    converted: dict[str, Any] = legacy_card.model_dump(mode="json", exclude_none=True)
    converted["protocolVersion"] = chosen[0].protocol_version or _DEFAULT_LEGACY_VERSION
    return converted


def _is_pre_1_0(version: str) -> bool:
    return version.split(".", 1)[0].strip() == "0"
