"""Sending one webhook delivery through the outbound guard, signed (Standard Webhooks)."""

from __future__ import annotations

import time

import orjson

from application.webhook_delivery import Attempt, Delivery
from application.webhooks import Endpoint
from infrastructure.outbound import OutboundClient, OutboundFailed, OutboundRefused
from infrastructure.webhook_signing import headers


class GuardedWebhookSender:
    def __init__(self, outbound: OutboundClient) -> None:
        self._outbound = outbound

    def send(self, endpoint: Endpoint, delivery: Delivery) -> Attempt:
        """POST the delivery's body, signed now; the answer's status or the error's kind."""
        payload = orjson.loads(delivery.body)
        # post_json writes the payload with orjson, as here: the bytes signed are those sent.
        body = orjson.dumps(payload)
        at = time.time()
        signed = headers(endpoint.secret, delivery.delivery_id, int(at), body)
        if delivery.request_id:
            signed["X-Request-ID"] = delivery.request_id  # the request that wrote the event
        started = time.perf_counter()
        try:
            # A redirect is a failed attempt: followed, it would send the event elsewhere (or
            # turn the POST into a GET), and the subscription names one endpoint.
            answer = self._outbound.post_json(endpoint.url, payload, headers=signed, follow_redirects=False)
        except OutboundFailed as failure:
            return Attempt(at, None, failure.kind, _ms(started))
        return Attempt(at, answer.status, None if answer.ok else "status", _ms(started))


def refusal(outbound: OutboundClient, url: str) -> str | None:
    """Why the guard refuses `url` (for a 422 when a subscription names it), or None."""
    try:
        outbound.check_url(url)
    except OutboundRefused as refused:
        return refused.reason
    return None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
