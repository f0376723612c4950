"""The registry's checks of a submitted card (the application's CardChecks and CardFetcher):
A2A field rules, the RFC 8785 hash, the card's own signatures with keys from its `jku`, and
fetching a card by URL, every fetch through the one outbound guard."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from application.registry import CardUnavailable, Signature
from domain.cards import card_problems
from infrastructure.a2a_cards import NotCanonicalisable, card_hash, verify_card
from infrastructure.card_publishing import unservable
from infrastructure.outbound import OutboundClient, OutboundError

log = logging.getLogger(__name__)


class A2ACardChecks:
    def __init__(self, outbound: OutboundClient) -> None:
        self._outbound = outbound

    def problems(self, card: object) -> dict[str, str]:
        problems = card_problems(card, prefix="card")
        if not problems and isinstance(card, Mapping) and (why := unservable(card)) is not None:
            problems["card"] = f"A2A clients could not read this card: {why}"
        return problems

    def card_hash(self, card: Mapping[str, Any]) -> str:
        return card_hash(card)

    def verify(self, tenant: str, card: Mapping[str, Any]) -> Signature:
        try:
            check = verify_card(card, self._keys)
        except NotCanonicalisable as e:
            return Signature("invalid", f"the card has no canonical form: {e}")
        return Signature(check.state, check.detail)

    def _keys(self, kid: str | None, jku: str | None) -> list[dict[str, Any]]:
        """Candidate public keys of a signature: from its `jku` (through the guard)."""
        if not jku:
            return []
        try:
            document = self._outbound.get_json(jku)
        except OutboundError as e:
            log.info("card signature keys not fetched from %s: %s", _where(jku), e)
            return []
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            return []
        return [k for k in keys if isinstance(k, dict) and (kid is None or k.get("kid") == kid)]


class GuardedCardFetcher:
    """Cards by URL, through the outbound guard (its body limit; the card's own is the
    registry's, checked on what was fetched as on what was sent)."""

    def __init__(self, outbound: OutboundClient) -> None:
        self._outbound = outbound

    def fetch(self, url: str) -> object:
        try:
            return self._outbound.get_json(url)
        except OutboundError as e:
            raise CardUnavailable(url, str(e)) from None


def _where(url: str) -> str:
    return url.split("?", 1)[0]
