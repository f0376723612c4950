"""The outbound guard's rules, without a network: which addresses a fetch may reach, which
URLs are refused before any, and the setting that allows networks."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from ipaddress import ip_address, ip_network

import pytest
from pydantic import ValidationError

from infrastructure.outbound import OutboundPolicy, OutboundRefused, redacted
from infrastructure.outbound_addresses import IPAddress, refusal
from infrastructure.settings import Settings
from interfaces.logs import WithoutQuery

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:192.168.0.1", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%1", "link-local"),
    ("::ffff:169.254.169.254", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("::ffff:224.0.0.1", "multicast"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("::ffff:100.64.0.1", "carrier-grade NAT"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("203.0.113.7", "reserved"),
    ("2001:db8::1", "reserved"),
    ("2001::1", "reserved"),  # Teredo
    ("100::1", "reserved"),
    ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
    ("4000::1", "reserved"),  # outside global unicast
    ("64:ff9b:1::1", "reserved"),
    # IPv6 addresses that carry an IPv4 one to a gateway are judged by it.
    ("64:ff9b::7f00:1", "loopback (carried in 64:ff9b::7f00:1)"),
    ("64:ff9b::a9fe:a9fe", "link-local (carried in 64:ff9b::a9fe:a9fe)"),
    ("2002:7f00:1::", "loopback (carried in 2002:7f00:1::)"),
    ("2002:c0a8:101::1", "private (carried in 2002:c0a8:101::1)"),
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below carrier-grade NAT
    "100.128.0.0",  # just above it
    "172.32.0.1",  # just above 172.16.0.0/12
    "169.253.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # 8.8.8.8 through NAT64
    "2002:808:808::1",  # 8.8.8.8 through 6to4
]


def never_resolve(host: str, port: int) -> Sequence[IPAddress]:
    raise AssertionError(f"{host} should not have been resolved")


def resolving(*addresses: str) -> OutboundPolicy:
    """A policy whose resolver answers `addresses` for any name."""
    return OutboundPolicy(resolve=lambda host, port: [ip_address(a) for a in addresses])


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_addresses_that_are_not_public_are_refused(address: str, kind: str) -> None:
    assert refusal(ip_address(address)) == kind


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_reached(address: str) -> None:
    assert refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("::ffff:127.0.0.1", "127.0.0.0/8"),  # the mapped form is the same host
        ("10.1.2.3", "10.1.0.0/16"),
        ("10.20.0.5", "10.20.0.5/32"),
        ("fd00::1", "fd00::/8"),
        ("169.254.169.254", "169.254.169.254/32"),
        ("64:ff9b::a00:1", "64:ff9b::/96"),  # a NAT64 gateway's traffic, allowed as such
    ],
)
def test_an_allowed_network_is_reached(address: str, allowed: str) -> None:
    assert refusal(ip_address(address), [ip_network(allowed)]) is None


@pytest.mark.parametrize(
    ("address", "allowed", "kind"),
    [
        ("10.2.0.1", "10.1.0.0/16", "private"),
        ("169.254.169.254", "10.0.0.0/8", "link-local"),
        ("127.0.0.2", "127.0.0.1/32", "loopback"),
        ("::1", "127.0.0.0/8", "loopback"),  # IPv6 loopback is not 127.0.0.0/8
        ("64:ff9b::a00:1", "10.0.0.0/8", "private (carried in 64:ff9b::a00:1)"),
    ],
)
def test_an_allowed_network_allows_nothing_else(address: str, allowed: str, kind: str) -> None:
    assert refusal(ip_address(address), [ip_network(allowed)]) == kind


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "gopher://example.com:70/",
        "ws://example.com/socket",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "//example.com/no-scheme",
        "example.com/path",
    ],
)
def test_only_http_and_https_are_fetched(url: str) -> None:
    with pytest.raises(OutboundRefused, match="only http and https"):
        OutboundPolicy(resolve=never_resolve).check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@example.com/",
        "https://user@example.com/",
        "http://:s3cret@example.com/",
        "http://user:s3cret@8.8.8.8/",
    ],
)
def test_urls_with_credentials_are_refused_without_saying_them(url: str) -> None:
    with pytest.raises(OutboundRefused, match="credentials") as refused:
        OutboundPolicy(resolve=never_resolve).check_url(url)
    assert "s3cret" not in str(refused.value)
    assert "user" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://", "http:///path", "http://[::1", "https://example.com:99999/"])
def test_urls_without_a_reachable_host_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy(resolve=never_resolve).check_url(url)


def test_an_ip_literal_is_not_resolved() -> None:
    OutboundPolicy(resolve=never_resolve).check_url("https://8.8.8.8/x")
    OutboundPolicy(resolve=never_resolve).check_url("https://[2606:4700:4700::1111]:8443/x")
    with pytest.raises(OutboundRefused, match=r"::1 is loopback"):
        OutboundPolicy(resolve=never_resolve).check_url("http://[::1]:8080/")


def test_a_host_is_reached_only_when_every_address_is() -> None:
    resolving("8.8.8.8", "2606:4700:4700::1111").check_url("https://agent.example/card.json")
    with pytest.raises(OutboundRefused, match=r"agent.example resolves to 10.0.0.7, which is private"):
        resolving("8.8.8.8", "10.0.0.7").check_url("https://agent.example/card.json")


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fail(host: str, port: int) -> Sequence[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(OutboundRefused, match="does not resolve"):
        OutboundPolicy(resolve=fail).check_url("https://nowhere.example/")
    with pytest.raises(OutboundRefused, match="does not resolve"):
        resolving().check_url("https://nowhere.example/")
    with pytest.raises(OutboundRefused, match="does not resolve"):  # refused before any lookup
        OutboundPolicy().check_url("https://agent..example/")


def test_the_resolver_is_asked_for_the_ascii_name_and_the_port() -> None:
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> Sequence[IPAddress]:
        asked.append((host, port))
        return [ip_address("8.8.8.8")]

    policy = OutboundPolicy(resolve=resolve)
    policy.check_url("https://münchen.example/")
    policy.check_url("http://Agent.Example:8080/")
    policy.check_url("http://agent.example/")
    assert asked == [("xn--mnchen-3ya.example", 443), ("agent.example", 8080), ("agent.example", 80)]


def test_a_refusal_names_the_url_without_its_query() -> None:
    with pytest.raises(OutboundRefused) as refused:
        resolving("127.0.0.1").check_url("http://agent.example:8080/metrics?token=s3cret#frag")
    assert refused.value.url == "http://agent.example:8080/metrics"
    assert refused.value.kind == "refused"
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@agent.example:8443/a/b?token=x#f", "https://agent.example:8443/a/b"),
        ("http://[::1]:80/x?y", "http://[::1]:80/x"),
        ("file:///etc/passwd", "file:/etc/passwd"),
        ("http://[::1", "<not a URL>"),
    ],
)
def test_what_of_a_url_may_be_logged(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_httpx_request_lines_are_logged_without_their_query() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        ("GET", "https://peer.example/index?token=s3cret", "HTTP/1.1", 200, "OK"),
        None,
    )
    WithoutQuery(1).filter(record)
    assert record.getMessage() == 'HTTP Request: GET https://peer.example/index "HTTP/1.1 200 OK"'


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_outbound_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OUTBOUND_ALLOW_NETS", "OUTBOUND_TIMEOUT_S", "OUTBOUND_MAX_BYTES"):
        monkeypatch.delenv(name, raising=False)


def test_nothing_private_is_allowed_by_default() -> None:
    policy = OutboundPolicy.from_settings(settings())
    assert policy.allow_nets == ()
    assert (policy.timeout_s, policy.connect_timeout_s, policy.max_bytes) == (5.0, 2.0, 1_048_576)
    assert policy.max_redirects == 5


@pytest.mark.parametrize(
    "value",
    ["127.0.0.0/8, 10.20.0.5,fd00::/8", '["127.0.0.0/8", "10.20.0.5", "fd00::/8"]'],
)
def test_allowed_networks_are_a_comma_separated_or_json_list(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = (ip_network("127.0.0.0/8"), ip_network("10.20.0.5/32"), ip_network("fd00::/8"))
    assert settings(OUTBOUND_ALLOW_NETS=value).outbound_allow_nets == expected
    monkeypatch.setenv("OUTBOUND_ALLOW_NETS", value)
    assert settings().outbound_allow_nets == expected


def test_the_timeouts_and_size_come_from_the_settings() -> None:
    policy = OutboundPolicy.from_settings(
        settings(OUTBOUND_TIMEOUT_S="1.5", OUTBOUND_MAX_BYTES="65536", OUTBOUND_ALLOW_NETS="10.0.0.0/8")
    )
    assert (policy.timeout_s, policy.connect_timeout_s, policy.max_bytes) == (1.5, 1.5, 65536)
    assert policy.allow_nets == (ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    "value", ["10.0.0.0/33", "10.0.0.1/8", "banana", "10.0.0.0/8,,nope", '["10.0.0.0/8", 12]', "[10.0.0.0/8"]
)
def test_a_bad_network_is_refused_at_start_naming_the_setting(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTBOUND_ALLOW_NETS", value)
    with pytest.raises(ValidationError, match="OUTBOUND_ALLOW_NETS"):
        settings()


@pytest.mark.parametrize(
    "values", [{"OUTBOUND_TIMEOUT_S": "0"}, {"OUTBOUND_TIMEOUT_S": "600"}, {"OUTBOUND_MAX_BYTES": "10"}]
)
def test_timeouts_and_sizes_out_of_bounds_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="OUTBOUND_"):
        settings(**values)
