"""Card answers, public or not: the served bytes with ETag, Cache-Control, Last-Modified,
and 304 to a matching If-None-Match (RFC 9110 §13.1.2: weak comparison, `*`, lists).
Hot answers come from the card cache (see infrastructure.card_cache)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response
from prometheus_client import Counter

from application.registry import AgentNotFound
from infrastructure.card_cache import NOT_OWN, CachedCard, own_key, public_key
from interfaces.bootstrap import System
from projections.agent_cards_queries import AgentRecord

CARD_MAX_AGE_S = 60
CARD_CACHE = Counter(
    "a2a_registry_card_cache_requests_total",
    "Card answers served from the card cache (hit) or built from the read model (miss).",
    ["result"],
)
HIT, MISS = CARD_CACHE.labels("hit"), CARD_CACHE.labels("miss")
# A card GET answered from this process's memory never gets here (and is not counted): these
# are the ones that went the long way, through the thread pool.
SLOW_CARDS = Counter(
    "a2a_card_reads_off_the_event_loop_total",
    "Card GETs not answered from the serving process's memory, by where the answer came from:"
    " the shared cache (Redis) or the read model.",
    ["answered_from"],
)
_FROM_CACHE, _FROM_READ_MODEL = SLOW_CARDS.labels("cache"), SLOW_CARDS.labels("read_model")
A2AVersion = Annotated[
    str | None,
    Header(
        alias="A2A-Version",
        max_length=16,
        pattern=r"^[0-9]+(\.[0-9]+){0,2}$",
        description="0.3 (or 0.2.x) for the v0.3 form of the card; v1.0 otherwise.",
    ),
]


def generation_for(a2a_version: str | None) -> str:
    return "0.3" if a2a_version is not None and a2a_version.split(".")[0] == "0" else "1.0"


def card_at_once(system: System, tenant: str, ref: str, a2a_version: str | None, original: bool) -> CachedCard | None:
    """The answer `card_response` would give, if this process holds it (no I/O: for the
    event loop); None sends the request the long way, in the thread pool."""
    generation = generation_for(a2a_version)
    cache = system.card_cache
    found = cache.get_at_once(own_key(tenant, ref, generation, original))
    if found is NOT_OWN or (found is not None and found.body is None):
        found = cache.get_at_once(public_key(ref, generation, original))
    if found is not None:
        HIT.inc()  # a miss here goes the long way, and is counted there
    return found


def public_at_once(system: System, public_id: str, a2a_version: str | None) -> CachedCard | None:
    """`public_card`'s answer if this process holds it (no I/O)."""
    found = system.card_cache.get_at_once(public_key(public_id, generation_for(a2a_version), False))
    if found is not None:
        HIT.inc()
    return found


def card_response(
    system: System, tenant: str, ref: str, a2a_version: str | None, original: bool, if_none_match: str | None
) -> Response:
    """The card `ref` names for `tenant`: its own agent of that id, else a public agent of
    that public id (the visibility rule of AgentCardsQueries.visible)."""
    generation = generation_for(a2a_version)
    cache = system.card_cache
    found = cache.get(own_key(tenant, ref, generation, original))
    if found is NOT_OWN or (found is not None and found.body is None):
        found = cache.get(public_key(ref, generation, original))
    if found is None:
        MISS.inc()
        found = _read(system, tenant, ref, generation, original)
        _FROM_READ_MODEL.inc()
    else:
        HIT.inc()
        _FROM_CACHE.inc()
    return respond(found, if_none_match, public=False)


def _read(system: System, tenant: str, ref: str, generation: str, original: bool) -> CachedCard:
    record = system.agent_cards.visible(tenant, ref)
    if record is None:
        raise AgentNotFound(ref)
    card = cached_card(system, record, generation, original)
    agent = (record.tenant, record.agent_id)
    if agent == (tenant, ref):
        system.card_cache.put(own_key(tenant, ref, generation, original), card, agent, record.position)
    else:
        system.card_cache.put(own_key(tenant, ref, generation, original), NOT_OWN, (tenant, ref), 0)
        if card.public:
            key = public_key(record.public_id, generation, original)
            system.card_cache.put(key, card, agent, record.position)
    return card


def cached_card(system: System, record: AgentRecord, generation: str, original: bool) -> CachedCard:
    card = system.card_server.served(record, generation, original=original)
    return CachedCard(card.body, card.etag, card.last_modified, public=record.visibility == "public")


def public_card(system: System, public_id: str, a2a_version: str | None, if_none_match: str | None) -> Response:
    """A public agent's card, no token (the well-known documents)."""
    generation = generation_for(a2a_version)
    key = public_key(public_id, generation, False)
    found = system.card_cache.get(key)
    (MISS if found is None else HIT).inc()
    if found is None:
        record = system.agent_cards.public(public_id)
        if record is None:
            raise AgentNotFound(public_id)
        found = cached_card(system, record, generation, False)
        system.card_cache.put(key, found, (record.tenant, record.agent_id), record.position)
        _FROM_READ_MODEL.inc()
    else:
        _FROM_CACHE.inc()
    return respond(found, if_none_match, public=True)


def respond(card: CachedCard, if_none_match: str | None, *, public: bool) -> Response:
    headers = {
        "ETag": card.etag,
        "Last-Modified": card.last_modified,
        "Cache-Control": f"{'public' if public else 'private'}, max-age={CARD_MAX_AGE_S}",
        "Vary": "A2A-Version" if public else "A2A-Version, Authorization",
    }
    if if_none_match is not None and matches(if_none_match, card.etag):
        return Response(status_code=304, headers=headers)
    return Response(card.body, media_type="application/json", headers=headers)


def matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in tags
