"""RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of a JSON value that hashes and
signatures of AgentCards are computed over."""

from __future__ import annotations

from typing import Any

import rfc8785

__all__ = ["MAX_DEPTH", "NotCanonicalisable", "canonical"]

# The serializer recurses once per level: a bound keeps a hostile value from exhausting the
# stack (checked cards nest far less, see domain.cards.MAX_DEPTH).
MAX_DEPTH = 128


class NotCanonicalisable(ValueError):
    """A value with no RFC 8785 form: not JSON, a non-finite number, an integer beyond 2**53,
    a lone surrogate, or nesting deeper than MAX_DEPTH."""


def canonical(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value (dicts, lists, str, int, float, bool,
    None)."""
    _check_depth(value)
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalisable(str(exc)) from exc


def _check_depth(value: Any) -> None:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise NotCanonicalisable(f"nesting deeper than {MAX_DEPTH} levels")
        pending.extend((child, depth + 1) for child in children)
