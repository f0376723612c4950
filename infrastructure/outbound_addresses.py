"""Which IP addresses an outbound fetch may reach: the public ones, and those an operator allows.

Pure functions over `ipaddress`: no resolution, no socket. The table is our own rather than
`ipaddress`'s `is_global`, whose answers changed between Python patch releases (and which
counts multicast as global); `is_global` is still asked last, so that a special range Python
knows and this table lacks is refused too.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

__all__ = ["IPAddress", "IPNetwork", "refusal"]


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ip_network(network), kind) for network, kind in rows)


IPV4_REFUSED = _table(
    ("0.0.0.0/8", "unspecified"),  # "this network"; 0.0.0.0 reaches the host itself on Linux
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),  # the clouds' metadata service is 169.254.169.254
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
    ("192.0.2.0/24", "reserved"),  # documentation
    ("192.88.99.0/24", "reserved"),  # 6to4 relays, deprecated
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),  # benchmarking
    ("198.51.100.0/24", "reserved"),  # documentation
    ("203.0.113.0/24", "reserved"),  # documentation
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
)
IPV6_REFUSED = _table(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),  # NAT64 for local use
    ("100::/64", "reserved"),  # discard only
    ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo tunnels among them
    ("2001:db8::/32", "reserved"),  # documentation
    ("3fff::/20", "reserved"),  # documentation
    ("5f00::/16", "reserved"),  # segment routing
    ("fc00::/7", "private"),  # unique local
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),  # site-local, deprecated
    ("ff00::/8", "multicast"),
)
GLOBAL_UNICAST = IPv6Network("2000::/3")
NAT64 = IPv6Network("64:ff9b::/96")


def refusal(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why an outbound connection to `address` is refused ("loopback", "private", ...), or
    None when the address is public or inside one of the `allowed` networks.

    An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it is. An
    IPv6 address that carries an IPv4 one to a gateway (NAT64 64:ff9b::/96, 6to4 2002::/16)
    is refused when the IPv4 address would be, whatever `allowed` says of it: allowing such
    a gateway's traffic takes allowing its IPv6 network.
    """
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == network.version and address in network for network in allowed):
        return None
    if isinstance(address, IPv4Address):
        return _refused_ipv4(address)
    carried = _carried_ipv4(address)
    if carried is not None:
        reason = _refused_ipv4(carried)
        return None if reason is None else f"{reason} (carried in {address})"
    return _refused_ipv6(address)


def _refused_ipv4(address: IPv4Address) -> str | None:
    for network, kind in IPV4_REFUSED:
        if address in network:
            return kind
    return None if address.is_global else "reserved"


def _refused_ipv6(address: IPv6Address) -> str | None:
    for network, kind in IPV6_REFUSED:
        if address in network:
            return kind
    if address not in GLOBAL_UNICAST or not address.is_global:
        return "reserved"
    return None


def _carried_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address in NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour
