"""Cards as this registry serves them: the agent's card in the generation the client speaks,
with the goals extension added and this registry's signature, as bytes with their ETag.

The registry signs with the key ring behind /.well-known/jwks.json, deterministically (RFC 6979
ECDSA), so that the same card and goals give the same bytes, and the same ETag, in every
process. The agent's own signatures covered the card without our extension: they are not
served here (the record keeps them with their verification result; `?original=true` serves
the card exactly as submitted).

A peer's agent (a copy, see `domain.peers`) is served as its registry served it, but for the
goals extension: under our uri, and signed by us, it would say goals this registry recorded.
It is served under PEER_GOALS_EXTENSION_URI instead, with the peer's URL as `params.origin`.
Whatever a card itself lists under either uri is not served: both are this registry's to use.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from infrastructure.a2a_cards import as_v0_3, as_v1, canonical
from infrastructure.sdk_cards import sdk_payload
from infrastructure.signing_keys import KeyRing
from projections.agent_cards_queries import AgentRecord

GOALS_EXTENSION_URI = "urn:a2a-goals:extension:goals:v1"
GOALS_EXTENSION_DESCRIPTION = "The agent's goals and progress, as recorded by this registry."
PEER_GOALS_EXTENSION_URI = "urn:a2a-goals:extension:peer-goals:v1"
PEER_GOALS_EXTENSION_DESCRIPTION = (
    "The agent's goals and progress as the peer registry at params.origin published them;"
    " not recorded by this registry."
)
OUR_URIS = frozenset({GOALS_EXTENSION_URI, PEER_GOALS_EXTENSION_URI})
CACHED_CARDS = 10_000


@dataclass(frozen=True)
class ServedCard:
    body: bytes
    etag: str
    last_modified: str


def with_goals(card: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A v1.0 card with our goals extension in `capabilities.extensions` (the only place A2A
    allows: no new top-level field), replacing any extension that claims one of our uris,
    and without signatures (they covered the card as submitted)."""
    served = _unsigned(card)
    others, _ = _split_extensions(card)
    ours = {"uri": GOALS_EXTENSION_URI, "description": GOALS_EXTENSION_DESCRIPTION, "required": False}
    served["capabilities"] = {
        **dict(card.get("capabilities") or {}),
        "extensions": [*others, {**ours, "params": dict(params)}],
    }
    return served


def unservable(card: Mapping[str, Any]) -> str | None:
    """Why a card that passes the A2A field rules still could not be served (the SDK cannot
    read or convert it), or None: what the card route would do, tried once at registration."""
    try:
        served = with_goals(as_v1(card), {})
        sdk_payload(served)
        canonical(as_v0_3(served))
    except ValueError as e:  # CardNotConvertible, NotCanonicalisable
        return str(e) or type(e).__name__
    return None


def as_copy(card: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """A v1.0 card of a peer's agent, without signatures, and with the goals extension the
    peer served moved under PEER_GOALS_EXTENSION_URI, its `params.origin` the peer's URL."""
    served = _unsigned(card)
    others, claimed = _split_extensions(card)
    if not claimed:
        return served
    goals = next((e for e in claimed if e.get("uri") == GOALS_EXTENSION_URI), None)
    if goals is not None:
        params = goals.get("params")
        others.append(
            {
                "uri": PEER_GOALS_EXTENSION_URI,
                "description": PEER_GOALS_EXTENSION_DESCRIPTION,
                "required": False,
                "params": {**(params if isinstance(params, dict) else {}), "origin": origin},
            }
        )
    served["capabilities"] = {**dict(card.get("capabilities") or {}), "extensions": others}
    return served


def _split_extensions(card: Mapping[str, Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """A card's extensions: those of others, and those that claim one of our uris."""
    capabilities = card.get("capabilities")
    listed = capabilities.get("extensions") if isinstance(capabilities, Mapping) else None
    others: list[Any] = []
    claimed: list[dict[str, Any]] = []
    for e in listed if isinstance(listed, list) else []:
        if isinstance(e, dict) and e.get("uri") in OUR_URIS:
            claimed.append(e)
        else:
            others.append(e)
    return others, claimed


class CardSigner:
    """JWS (detached payload, A2A §8.4) by the registry's newest key, deterministic."""

    def __init__(self, keys: KeyRing, jku: str) -> None:
        self._keys = keys
        self._jku = jku

    @property
    def kid(self) -> str:
        return self._keys.signing_kid

    def sign(self, card: dict[str, Any], payload: bytes) -> dict[str, Any]:
        key = self._keys.signing_key()
        header = {"alg": "ES256", "kid": self._keys.signing_kid, "jku": self._jku, "typ": "JOSE"}
        protected = _b64(orjson.dumps(header))
        signing_input = f"{protected}.{_b64(payload)}".encode()
        private = key.get_private_key()
        der = private.sign(signing_input, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        signature = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return {**card, "signatures": [{"protected": protected, "signature": signature}]}


class CardServer:
    """Builds served cards, and keeps the last CACHED_CARDS built (signing is the costly part).
    An entry is used only for the record it was built from (its log position and goals), so
    a stale one is never served."""

    def __init__(self, signer: CardSigner) -> None:
        self._signer = signer
        self._built: OrderedDict[tuple[str, str, bool], tuple[tuple[Any, ...], ServedCard]] = OrderedDict()
        self._lock = threading.Lock()

    def served(self, record: AgentRecord, generation: str, *, original: bool = False) -> ServedCard:
        key = (record.public_id, generation, original)
        stamp = (record.position, record.card_hash, tuple(record.goals.params().items()), self._signer.kid)
        with self._lock:
            found = self._built.get(key)
            if found is not None and found[0] == stamp:
                self._built.move_to_end(key)
                return found[1]
        built = self._build(record, generation, original)
        with self._lock:
            self._built[key] = (stamp, built)
            while len(self._built) > CACHED_CARDS:
                self._built.popitem(last=False)
        return built

    def own(self, card: dict[str, Any], generation: str) -> ServedCard:
        """The registry's own card, signed (built again only when it or the key changes; its
        Last-Modified is when this process built it)."""
        key = ("", generation, False)
        stamp = (card_hash_of(card), self._signer.kid)
        with self._lock:
            found = self._built.get(key)
            if found is not None and found[0] == stamp:
                return found[1]
        legacy = generation == "0.3"
        form = as_v0_3(card) if legacy else card
        signed = self._signer.sign(form, canonical(form) if legacy else sdk_payload(form))
        body = orjson.dumps(signed)
        built = ServedCard(body, _etag(body), format_datetime(datetime.now(UTC), usegmt=True))
        with self._lock:
            self._built[key] = (stamp, built)
        return built

    def _build(self, record: AgentRecord, generation: str, original: bool) -> ServedCard:
        if original:
            body = orjson.dumps(record.card)
        else:
            card = as_v1(record.card)
            # Our goals extension only for our own agents: a peer's are moved aside.
            card = as_copy(card, record.origin) if record.origin else with_goals(card, record.goals.params())
            if generation == "0.3":
                legacy = as_v0_3(card)
                signed = self._signer.sign(legacy, canonical(legacy))
            else:
                signed = self._signer.sign(card, sdk_payload(card))
            body = orjson.dumps(signed)
        etag = _etag(body)
        # The served card changes with the goals too: the later of the two changes.
        changed = max(record.updated_at, record.goals.last_updated or "")
        modified = format_datetime(datetime.fromisoformat(changed).astimezone(UTC), usegmt=True)
        return ServedCard(body, etag, modified)


def _unsigned(card: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in card.items() if k != "signatures"}


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def card_hash_of(card: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(card))).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
