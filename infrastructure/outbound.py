"""The one guard of every outbound fetch: AgentCards, issuers' JWKS, peers' registry indexes,
agents' health and metrics endpoints, webhooks.

A target is reached only when its scheme is http or https, its URL holds no credentials,
and every address its host resolves to is public or inside OUTBOUND_ALLOW_NETS
(`outbound_addresses.refusal`). The host is resolved once per connection and the connection
goes to the address that was checked (`pinned_transport`), so a name cannot pass the check
with one answer and be connected to with another. Redirects are followed here, at most
`max_redirects`, each hop checked by the same rules. A fetch ends within `timeout_s`,
redirects and body included, and a body past `max_bytes` is refused while it arrives.

What is logged of a URL is its scheme, host, port and path: a query or userinfo may hold a
token.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson

from infrastructure.outbound_addresses import IPAddress, IPNetwork, refusal
from infrastructure.pinned_transport import PinnedTransport, deadline

if TYPE_CHECKING:
    from infrastructure.settings import Settings

__all__ = [
    "FailureKind",
    "OutboundClient",
    "OutboundError",
    "OutboundFailed",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboundResponse",
    "redacted",
    "resolve_host",
]

log = logging.getLogger(__name__)

FailureKind = Literal["refused", "unreachable", "timeout", "status", "too_large", "unparsable"]
Resolver = Callable[[str, int], Sequence[IPAddress]]

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CONNECT_TIMEOUT_S = 2.0
MAX_REDIRECTS = 5
# Sent to the origin a request was meant for, never along a redirect to another one.
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
USER_AGENT = "a2a-goals"


def redacted(url: str | httpx.URL) -> str:
    """What of a URL may be logged: scheme, host, port and path, without userinfo or query."""
    try:
        parts = urlsplit(str(url))
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "<not a URL>"
    if ":" in host:
        host = f"[{host}]"
    authority = f"//{host}" + (f":{port}" if port is not None else "") if parts.netloc else ""
    return f"{parts.scheme}:{authority}{parts.path}" if parts.scheme else parts.path


class OutboundError(Exception):
    """An outbound fetch gave no answer to use. `url` is redacted: it may be logged."""

    def __init__(self, url: str | httpx.URL, reason: str) -> None:
        self.url = redacted(url)
        self.reason = reason
        super().__init__(f"{self.url}: {reason}")


class OutboundFailed(OutboundError):
    """A fetch that failed, and how, to be counted by `kind`."""

    def __init__(self, url: str | httpx.URL, kind: FailureKind, reason: str) -> None:
        super().__init__(url, reason)
        self.kind: FailureKind = kind


class OutboundRefused(OutboundFailed):
    """The guard refused the target (scheme, credentials, an address not to be reached):
    nothing was sent to it. A failure of kind "refused", so it is counted with the others."""

    def __init__(self, url: str | httpx.URL, reason: str) -> None:
        super().__init__(url, "refused", reason)


class _AddressRefused(Exception):
    """Raised from under httpx, where no URL is known; the client names the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The host's addresses by the system's resolver, each once, in its order."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:  # a label empty or too long, refused before any lookup
        raise socket.gaierror(socket.EAI_NONAME, f"{host} is not a host name") from None
    return list(dict.fromkeys(ip_address(str(sockaddr[0])) for *_, sockaddr in found))


@dataclass(frozen=True)
class OutboundPolicy:
    """What an outbound fetch may reach, and how long and how much it may take."""

    allow_nets: tuple[IPNetwork, ...] = ()
    timeout_s: float = 5.0  # a whole fetch: redirects and body included
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    max_bytes: int = 1_048_576
    max_redirects: int = MAX_REDIRECTS
    resolve: Resolver = field(default=resolve_host, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0 or self.max_bytes < 0 or self.max_redirects < 0:
            raise ValueError("need positive timeouts, max_bytes >= 0 and max_redirects >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(
            allow_nets=settings.outbound_allow_nets,
            timeout_s=settings.outbound_timeout_s,
            connect_timeout_s=min(CONNECT_TIMEOUT_S, settings.outbound_timeout_s),
            max_bytes=settings.outbound_max_bytes,
        )

    def check_url(self, url: str) -> None:
        """Refuse (OutboundRefused) a URL no fetch could reach: not http(s), with credentials,
        without a host, or whose host does not resolve or resolves to an address refused.
        For configuration time: a fetch checks again, on the addresses it connects to."""
        target = self.target(url)
        host = target.raw_host.decode("ascii")
        try:
            self.addresses(host, target.port or DEFAULT_PORTS[target.scheme])
        except _AddressRefused as refused:
            raise OutboundRefused(url, refused.reason) from None
        except OSError as exc:
            raise OutboundRefused(url, f"{host} does not resolve ({exc})") from None

    def target(self, url: str | httpx.URL) -> httpx.URL:
        """The URL as a fetch reads it, once its scheme, credentials, host and port pass."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise OutboundRefused(url, f"not a valid URL ({exc})") from None
        if parsed.scheme not in DEFAULT_PORTS:
            raise OutboundRefused(url, f"scheme {parsed.scheme or 'none'!r}: only http and https are fetched")
        if parsed.userinfo:
            raise OutboundRefused(url, "credentials in the URL are refused")
        if not parsed.raw_host:
            raise OutboundRefused(url, "no host")
        if parsed.port is not None and not 0 < parsed.port < 65_536:
            raise OutboundRefused(url, f"port {parsed.port} does not exist")
        return parsed

    def addresses(self, host: str, port: int) -> Sequence[IPAddress]:
        """The addresses of `host`, resolved once, when every one of them may be reached.
        An OSError when the name does not resolve; refused when any address is."""
        try:
            found: Sequence[IPAddress] = [ip_address(host)]
            literal = True
        except ValueError:
            found, literal = self.resolve(host, port), False
        if not found:
            raise OSError(f"no address for {host}")
        for address in found:
            reason = refusal(address, self.allow_nets)
            if reason is not None:
                named = str(address) if literal else f"{host} resolves to {address}, which"
                raise _AddressRefused(f"{named} is {reason}")
        return found


@dataclass(frozen=True)
class OutboundResponse:
    """What the last hop answered: its status, headers, URL and the whole body."""

    status: int
    headers: httpx.Headers
    url: str
    content: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class OutboundClient:
    """Every outbound fetch of the system, through `policy`. Synchronous: callers run it in
    worker threads; one client (one pool of connections) is shared by all of them.

    No proxy from the environment is used (it would connect on our behalf to what we did
    not check), no cookie is kept, and bodies are asked for unencoded (a compressed body is
    refused rather than inflated past the limit).
    """

    def __init__(self, policy: OutboundPolicy, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        transport = PinnedTransport(
            self._checked_addresses, ssl_context or httpx.create_ssl_context(), LIMITS
        )
        self._client = httpx.Client(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(policy.timeout_s, connect=policy.connect_timeout_s),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        )

    def check_url(self, url: str) -> None:
        """OutboundRefused now if the policy refuses `url` (for a 422 when it is configured)."""
        self.policy.check_url(url)

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, accept: str = "*/*"
    ) -> OutboundResponse:
        """GET `url`, redirects followed: whatever the status, with the body read whole."""
        sent = httpx.Headers(headers)
        sent["Accept"] = accept
        return self._fetch("GET", url, sent, None)

    def get_json(self, url: str, *, headers: Mapping[str, str] | None = None) -> Any:
        """The JSON document at `url`; a status other than 2xx or a body that is not JSON
        fails (kinds "status", "unparsable")."""
        response = self.get(url, headers=headers, accept="application/json")
        if not response.ok:
            raise OutboundFailed(response.url, "status", f"answered {response.status}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise OutboundFailed(response.url, "unparsable", f"not JSON ({exc})") from None

    def post_json(
        self, url: str, body: Any, headers: Mapping[str, str] | None = None, *, follow_redirects: bool = True
    ) -> OutboundResponse:
        """POST `body` as JSON to `url`: whatever the status, with the answer's body read whole.
        Without `follow_redirects`, a redirect is the answer (a 3xx)."""
        sent = httpx.Headers(headers)
        sent["Content-Type"] = "application/json"
        return self._fetch("POST", url, sent, orjson.dumps(body), follow_redirects=follow_redirects)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OutboundClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _checked_addresses(self, host: str, port: int) -> Sequence[IPAddress]:
        return self.policy.addresses(host, port)

    def _fetch(
        self, method: str, url: str, headers: httpx.Headers, body: bytes | None, *, follow_redirects: bool = True
    ) -> OutboundResponse:
        with deadline(self.policy.timeout_s):
            target = self.policy.target(url)
            for _ in range(self.policy.max_redirects + 1):
                response = self._send(method, target, headers, body)
                location = response.headers.get("location")
                if response.status_code not in REDIRECTS or location is None or not follow_redirects:
                    return self._answer(response, target)
                response.close()
                following = self._redirect(target, location)
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, body = "GET", None
                    headers = _without(headers, ("content-type",))
                if _origin(following) != _origin(target):
                    headers = _without(headers, CREDENTIAL_HEADERS)
                target = following
        raise OutboundFailed(url, "status", f"more than {self.policy.max_redirects} redirects")

    def _send(
        self, method: str, target: httpx.URL, headers: httpx.Headers, body: bytes | None
    ) -> httpx.Response:
        request = self._client.build_request(method, target, headers=headers, content=body)
        with _failures(target):
            return self._client.send(request, stream=True)

    def _redirect(self, current: httpx.URL, location: str) -> httpx.URL:
        try:
            following = current.join(location)
        except httpx.InvalidURL:
            raise OutboundRefused(current, "redirected to an invalid URL") from None
        if current.scheme == "https" and following.scheme == "http":
            raise OutboundRefused(following, f"redirected from https ({redacted(current)}) to http")
        log.debug("outbound redirect from %s to %s", redacted(current), redacted(following))
        return self.policy.target(following)

    def _answer(self, response: httpx.Response, target: httpx.URL) -> OutboundResponse:
        try:
            with _failures(target):
                content = self._read(response, target)
        finally:
            response.close()
        log.debug("outbound %s: %d, %d bytes", redacted(target), response.status_code, len(content))
        return OutboundResponse(response.status_code, response.headers, str(target), content)

    def _read(self, response: httpx.Response, target: httpx.URL) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise OutboundFailed(target, "too_large", f"a body of {declared} bytes, over {limit}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise OutboundFailed(target, "unparsable", f"a body encoded as {encoding!r}, not asked for")
        body = bytearray()
        for chunk in response.iter_raw():  # counted as it arrives: Content-Length may lie or lack
            body += chunk
            if len(body) > limit:
                raise OutboundFailed(target, "too_large", f"a body of more than {limit} bytes")
        return bytes(body)


def _origin(url: httpx.URL) -> tuple[str, bytes, int]:
    return url.scheme, url.raw_host, url.port or DEFAULT_PORTS[url.scheme]


def _without(headers: httpx.Headers, names: Sequence[str]) -> httpx.Headers:
    kept = headers.copy()
    for name in names:
        kept.pop(name, None)
    return kept


@contextmanager
def _failures(target: httpx.URL) -> Iterator[None]:
    """httpx's errors, and the guard's refusal from under it, as the outbound ones."""
    try:
        yield
    except _AddressRefused as refused:
        raise OutboundRefused(target, refused.reason) from None
    except httpx.TimeoutException as exc:
        raise OutboundFailed(target, "timeout", f"no answer in time ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise OutboundFailed(target, "unreachable", str(exc) or type(exc).__name__) from exc
