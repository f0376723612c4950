"""The registry's checks of a submitted card (the application's CardChecks and CardFetcher):
A2A field rules, the RFC 8785 hash, the card's own signatures with keys from its `jku`, and
fetching a card by URL, every fetch through the one outbound guard."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from application.registry import CardUnavailable, Signature
from domain.cards import card_problems
from infrastructure.a2a_cards import NotCanonicalisable, card_hash, verify_card
from infrastructure.card_publishing import unservable
from infrastructure.outbound import OutboundClient, OutboundError, OutboundFailed

log = logging.getLogger(__name__)
FETCH_FAILURES = {
    "refused": "the outbound guard does not reach this address (OUTBOUND_ALLOW_NETS)",
    "unreachable": "it could not be reached",
    "timeout": "it did not answer in time",
    "status": "it did not answer 2xx",
    "too_large": "its answer is too large",
    "unparsable": "its answer is not JSON",
}


class A2ACardChecks:
    def __init__(
        self, outbound: OutboundClient, tenant_keys: Callable[[str], list[dict[str, Any]]] | None = None
    ) -> None:
        self._outbound = outbound
        self._tenant_keys = tenant_keys

    def problems(self, card: object) -> dict[str, str]:
        problems = card_problems(card, prefix="card")
        if not problems and isinstance(card, Mapping) and (why := unservable(card)) is not None:
            problems["card"] = f"A2A clients could not read this card: {why}"
        return problems

    def card_hash(self, card: Mapping[str, Any]) -> str:
        return card_hash(card)

    def verify(self, tenant: str, card: Mapping[str, Any], card_url: str | None = None) -> Signature:
        """A signature verifies with a key the tenant registered, or one published on the
        card's own origin (one of its interfaces' or the URL it was fetched from): anyone can
        publish keys somewhere, so a `jku` elsewhere proves nothing about who the card speaks for."""
        origins = _origins(card, card_url)
        registered = self._tenant_keys(tenant) if self._tenant_keys is not None else []
        fetched: dict[str, list[dict[str, Any]]] = {}  # each jku once, however many signatures

        def keys(kid: str | None, jku: str | None) -> list[dict[str, Any]]:
            found = [k for k in registered if kid is None or k.get("kid") == kid]
            if jku and _origin(jku) in origins:
                if jku not in fetched:
                    fetched[jku] = self._fetch_keys(jku)
                found += [k for k in fetched[jku] if kid is None or k.get("kid") == kid]
            return found

        try:
            check = verify_card(card, keys)
        except NotCanonicalisable as e:
            return Signature("invalid", f"the card has no canonical form: {e}")
        return Signature(check.state, check.detail)

    def _fetch_keys(self, jku: str) -> list[dict[str, Any]]:
        """The keys of a JWKS document (through the guard); none if it cannot be had."""
        try:
            document = self._outbound.get_json(jku)
        except OutboundError as e:
            log.info("card signature keys not fetched from %s: %s", _where(jku), e)
            return []
        keys = document.get("keys") if isinstance(document, dict) else None
        return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []


class GuardedCardFetcher:
    """Cards by URL, through the outbound guard (its body limit; the card's own is the
    registry's, checked on what was fetched as on what was sent)."""

    def __init__(self, outbound: OutboundClient) -> None:
        self._outbound = outbound

    def fetch(self, url: str) -> object:
        try:
            return self._outbound.get_json(url)
        except OutboundError as e:
            # The caller learns what kind of failure it was, not what the guard found out
            # (the address a name resolves to would make this a probe of internal names).
            log.info("card not fetched from %s: %s", _where(url), e.reason)
            kind = e.kind if isinstance(e, OutboundFailed) else "unreachable"
            raise CardUnavailable(url, FETCH_FAILURES.get(kind, "it could not be fetched")) from None


def _origins(card: Mapping[str, Any], card_url: str | None) -> set[tuple[str, str, int | None]]:
    """The origins a card speaks for: its interfaces' (both generations) and where it came from."""
    urls = [card_url, card.get("url")]
    for field in ("supportedInterfaces", "additionalInterfaces"):
        urls += [i.get("url") for i in card.get(field) or () if isinstance(i, Mapping)]
    return {_origin(u) for u in urls if isinstance(u, str)}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port or default)


def _where(url: str) -> str:
    return url.split("?", 1)[0]
