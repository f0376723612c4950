"""Whether an agent's card URL answers, through the outbound guard (reachability checks)."""

from __future__ import annotations

import logging

from infrastructure.outbound import OutboundClient, OutboundError, OutboundFailed

log = logging.getLogger(__name__)
# What a failure of each kind is recorded as: never the guard's own findings (the address a
# name resolved to would make the registry a probe of internal names).
FAILURES = {
    "refused": "the outbound guard does not reach this address (OUTBOUND_ALLOW_NETS)",
    "unreachable": "no connection could be made",
    "timeout": "no answer in time",
    "too_large": "the answer is too large",
    "unparsable": "the answer is not JSON",
}


class GuardedCardProbe:
    def __init__(self, outbound: OutboundClient) -> None:
        self._outbound = outbound

    def probe(self, url: str) -> str | None:
        """See `application.reachability.CardProbe`."""
        try:
            self._outbound.get_json(url)
        except OutboundError as e:
            kind = e.kind if isinstance(e, OutboundFailed) else "unreachable"
            log.info("reachability check of %s failed: %s", e.url, e.reason)
            detail = e.reason if kind == "status" else FAILURES.get(kind, "it could not be fetched")
            return f"{kind}: {detail}"
        return None
