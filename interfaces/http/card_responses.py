"""Card answers, public or not: the served bytes with ETag, Cache-Control, Last-Modified,
and 304 to a matching If-None-Match (RFC 9110 §13.1.2: weak comparison, `*`, lists)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from application.registry import AgentNotFound
from interfaces.bootstrap import System
from projections.agent_cards_queries import AgentRecord

CARD_MAX_AGE_S = 60
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


def card_response(
    system: System, tenant: str, ref: str, a2a_version: str | None, original: bool, if_none_match: str | None
) -> Response:
    record = system.agent_cards.visible(tenant, ref)
    if record is None:
        raise AgentNotFound(ref)
    return served(system, record, a2a_version, original, if_none_match, public=False)


def served(
    system: System,
    record: AgentRecord,
    a2a_version: str | None,
    original: bool,
    if_none_match: str | None,
    *,
    public: bool,
) -> Response:
    card = system.card_server.served(record, generation_for(a2a_version), original=original)
    headers = {
        "ETag": card.etag,
        "Last-Modified": card.last_modified,
        "Cache-Control": f"{'public' if public else 'private'}, max-age={CARD_MAX_AGE_S}",
        "Vary": "A2A-Version, Authorization" if not public else "A2A-Version",
    }
    if if_none_match is not None and matches(if_none_match, card.etag):
        return Response(status_code=304, headers=headers)
    return Response(card.body, media_type="application/json", headers=headers)


def matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in tags
