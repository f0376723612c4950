"""Callers behind a reverse proxy: the forwarded address is believed only from TRUSTED_PROXIES.

The proxy here is a second loopback address (127.0.0.2), the way nginx is a container of its
own in docker-compose.yml: its callers are told apart by X-Forwarded-For and get a token budget
each, while a peer that is not a trusted proxy cannot pick its address by sending the header."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import Server
from tests.e2e.test_security import READ_WRITE

PROXY = "127.0.0.2"


@contextmanager
def caller(server: Server, *, via: str, forwarded_for: str) -> Iterator[httpx.Client]:
    """A client connecting from the address `via`, claiming to forward `forwarded_for`."""
    transport = httpx.HTTPTransport(local_address=via)
    with httpx.Client(
        base_url=server.url, transport=transport, headers={"X-Forwarded-For": forwarded_for}, timeout=30
    ) as client:
        yield client


def token_status(client: httpx.Client, client_id: str, secret: str) -> int:
    answer = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    return answer.status_code


def test_callers_behind_a_trusted_proxy_have_a_budget_each(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(TRUSTED_PROXIES=PROXY, RATE_LIMIT_TOKEN="2/minute")
    client_id, secret = server.client(tenant, READ_WRITE)
    with caller(server, via=PROXY, forwarded_for="203.0.113.7") as guesser:
        assert [token_status(guesser, client_id, f"guess-{i}") for i in range(3)] == [401, 401, 429]
    with caller(server, via=PROXY, forwarded_for="198.51.100.23") as owner:
        assert token_status(owner, client_id, secret) == 200


def test_a_forwarded_address_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(TRUSTED_PROXIES=PROXY, RATE_LIMIT_TOKEN="2/minute")
    client_id, secret = server.client(tenant, READ_WRITE)
    with caller(server, via="127.0.0.1", forwarded_for="203.0.113.7") as guesser:
        assert [token_status(guesser, client_id, f"guess-{i}") for i in range(3)] == [401, 401, 429]
    # another forged address buys nothing: to the server both are 127.0.0.1
    with caller(server, via="127.0.0.1", forwarded_for="198.51.100.23") as forger:
        assert token_status(forger, client_id, secret) == 429
    # nor does the loopback address: no proxy is trusted unless configured
    with caller(server, via="127.0.0.1", forwarded_for="198.51.100.24") as forger:
        assert token_status(forger, client_id, secret) == 429


def test_without_trusted_proxies_no_forwarded_address_is_believed(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(RATE_LIMIT_TOKEN="2/minute")
    client_id, secret = server.client(tenant, READ_WRITE)
    with caller(server, via="127.0.0.1", forwarded_for="203.0.113.7") as guesser:
        assert [token_status(guesser, client_id, f"guess-{i}") for i in range(3)] == [401, 401, 429]
    with caller(server, via="127.0.0.1", forwarded_for="198.51.100.23") as forger:
        assert token_status(forger, client_id, secret) == 429
