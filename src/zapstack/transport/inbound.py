"""Caps on the inbound connections an endpoint holds: in all, and per IP address.

Contract
--------
Any peer may open many connections: each costs the listener memory (the QUIC library's
connection state, the session's buffers up to their bounds).  :class:`InboundCaps`
counts the inbound connections an endpoint holds, each under the IP address it came
from, from the moment its HELLO verifies until it ends.  :meth:`InboundCaps.admit` says
why one more must be closed -- ``total`` held, or ``per_host`` from that address
(loopback included; an IPv6 address counted with its /64, :func:`netgroup`) -- or takes
it in.  A validator's connection (the caller decides
who is one) is neither refused nor counted: the genesis set bounds those.  Sans-IO,
single-threaded (the loop's).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

__all__ = ["InboundCaps", "host_of", "netgroup"]


def host_of(addr: Any) -> str:
    """The host of a socket address, an IPv4-mapped IPv6 address as its IPv4 address."""
    host = str(addr[0]).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def netgroup(host: str) -> str:
    """What a per-address bound counts ``host`` under: an IPv4 address itself, an IPv6
    address its /64 (one subscriber's prefix: its 2**64 addresses cost an attacker nothing
    to change between), anything else (not an IP address) as it is."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class InboundCaps:
    """The inbound connections held, by IP address (see the module docstring)."""

    def __init__(self, total: int, per_host: int) -> None:
        self.total = total
        self.per_host = per_host
        self.held: dict[object, str] = {}
        """Connections held: connection -> its IP address (:func:`netgroup`)."""
        self._hosts: Counter[str] = Counter()
        self.refused = 0
        """Connections refused so far (a metric)."""

    def admit(self, conn: object, host: str) -> str | None:
        """Take ``conn`` from ``host`` in, or say why it is refused (counted)."""
        host = netgroup(host)
        why = None
        if len(self.held) >= self.total:
            why = f"{self.total} inbound connections held"
        elif self._hosts[host] >= self.per_host:
            why = f"{self.per_host} inbound connections from {host} held"
        if why is not None:
            self.refused += 1
            return why
        self.held[conn] = host
        self._hosts[host] += 1
        return None

    def gone(self, conn: object) -> None:
        """``conn`` ended (idempotent; a connection never taken in is ignored)."""
        host = self.held.pop(conn, None)
        if host is not None:
            self._hosts[host] -= 1
            if self._hosts[host] <= 0:
                del self._hosts[host]
