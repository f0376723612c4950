"""Where an agent's reachability is checked: its own card, at the origin of its first
interface (v1.0 `supportedInterfaces[0].url`, v0.3 `url`) under `/.well-known/agent-card.json`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from domain.cards import summary

WELL_KNOWN_CARD = "/.well-known/agent-card.json"
MAX_ERROR = 500


def card_check_url(card: Mapping[str, Any]) -> str | None:
    """The URL whose answer says the agent is reachable; None when its card names no http(s)
    interface (gRPC-only cards, say: nothing here could check them)."""
    interfaces = summary(card).interfaces
    if not interfaces:
        return None
    parts = urlsplit(interfaces[0])
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}{WELL_KNOWN_CARD}"


def error_text(error: str) -> str:
    """An error as recorded: bounded (the domain's limit on the event's `error`)."""
    return error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 1] + "…"
