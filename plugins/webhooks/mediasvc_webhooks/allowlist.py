"""Which addresses a webhook may reach: public ones only, unless the settings allow a host or network.

Refused: private, loopback, link-local, multicast, reserved, unspecified and otherwise non-global addresses, also
when wrapped in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``). Allowed anyway:
a host named in ``allow_hosts``, an address inside a CIDR (or equal to an IP) in ``allow_hosts``, and loopback
when ``allow_loopback`` is set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

NAT64_PREFIX = IPv6Network("64:ff9b::/96")


class BlockedAddressError(Exception):
    """A webhook host that resolves to an address the allow-list refuses."""


def parse_network(entry: str) -> IPNetwork | None:
    """The network an ``allow_hosts`` entry names (an IP is a one-address network), or None for a hostname."""
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, when it is mapped, NAT64 or 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def special_use(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination ("loopback", "private"...), or None when it is one."""
    if isinstance(address, IPv6Address) and (inner := embedded_ipv4(address)) is not None:
        return special_use(inner)
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((reason for reason, matched in checks if matched), None)


class AddressPolicy:
    """The allow-list: built once from the settings, asked before every connection."""

    def __init__(self, allow_hosts: Iterable[str] = (), allow_loopback: bool = False) -> None:
        self.allowed_networks: list[IPNetwork] = []
        self.allowed_hostnames: set[str] = set()
        for entry in allow_hosts:
            network = parse_network(entry)
            if network is not None:
                self.allowed_networks.append(network)
            else:
                self.allowed_hostnames.add(normalize_host(entry))
        self.allow_loopback = allow_loopback

    def refusal(self, host: str, address: str) -> str | None:
        """Why connecting to ``address`` (resolved from ``host``) is refused, or None when it is allowed."""
        if normalize_host(host) in self.allowed_hostnames:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
        candidates = [ip]
        if isinstance(ip, IPv6Address) and (inner := embedded_ipv4(ip)) is not None:
            candidates.append(inner)
        if any(candidate in network for candidate in candidates for network in self.allowed_networks):
            return None
        reason = special_use(ip)
        if reason is None or (reason == "loopback" and self.allow_loopback):
            return None
        return f"{host} resolves to {address}, a {reason} address (add it to plugins.webhooks.allow_hosts to allow)"

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise ``BlockedAddressError`` when any of ``addresses`` is refused (no network traffic)."""
        for address in addresses:
            if (reason := self.refusal(host, address)) is not None:
                raise BlockedAddressError(reason)

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and return its addresses, refusing them all if any one is not allowed."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(normalize_host(host), port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} did not resolve to any address")
        self.check(host, addresses)
        return addresses
