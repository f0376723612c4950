"""An httpx transport that connects to the addresses a guard checked, and to no other.

Resolving a name, checking its addresses and then letting the HTTP library resolve it again
leaves a window in which the name can change its answer (DNS rebinding): the check would
pass on a public address and the connection go to 169.254.169.254. Here the network backend
under httpcore is the one that resolves: it asks the guard for the checked addresses of the
host and port it is told to connect to, and connects to one of those. Everything above it
still sees the name, so the Host header, TLS's SNI and the certificate's check are the
host name's.

Every read, write, connection and TLS handshake also ends by the deadline of the fetch in
progress (`deadline`), so a peer that sends a byte now and then cannot hold a caller for
longer than the fetch's time.
"""

from __future__ import annotations

import contextvars
import ssl
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import httpcore
import httpx

from infrastructure.outbound_addresses import IPAddress

__all__ = ["PinnedTransport", "deadline"]

# The addresses a host name may be connected to, checked; an error refuses the connection.
CheckedAddresses = Callable[[str, int], Sequence[IPAddress]]

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Whatever the transport does for this thread within the block ends `seconds` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _within_deadline(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise expired("the fetch took its whole time")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation waits no longer than the fetch has left."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        wait = _within_deadline(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to a checked address of the host it is given, never to the name itself."""

    def __init__(self, checked_addresses: CheckedAddresses) -> None:
        self._checked_addresses = checked_addresses
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._checked_addresses(host, port)
        except OSError as exc:  # the name does not resolve
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        options = list(socket_options or ())
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            wait = _within_deadline(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._sockets.connect_tcp(str(address), port, wait, local_address, options)
            except httpcore.ConnectError as exc:  # refused: the next address may answer
                failure = exc
                continue
            return _DeadlineStream(stream)
        raise failure or httpcore.ConnectError(f"{host} has no address")


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport over a pool whose connections go to checked addresses only.

    httpx.HTTPTransport takes no network backend, so the pool it builds is replaced by one
    built alike on the pinning backend; httpx's request, response and error handling stay.
    """

    def __init__(
        self, checked_addresses: CheckedAddresses, ssl_context: ssl.SSLContext, limits: httpx.Limits
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(checked_addresses),
        )
