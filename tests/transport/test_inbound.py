"""The inbound caps: counted by host and in all, and the host of a socket address."""

from __future__ import annotations

from zapstack.transport.inbound import InboundCaps, host_of, netgroup


def test_host_of_reads_the_ip_and_unmaps_ipv4() -> None:
    assert host_of(("127.0.0.1", 9)) == "127.0.0.1"
    assert host_of(("::ffff:10.1.2.3", 9, 0, 0)) == "10.1.2.3"
    assert host_of(("fe80::1%eth0", 9, 0, 2)) == "fe80::1"
    assert host_of(("::1", 9, 0, 0)) == "::1"


def test_the_caps_count_by_host_and_in_all() -> None:
    caps = InboundCaps(total=3, per_host=2)
    a, b, c, d, e = (object() for _ in range(5))
    assert caps.admit(a, "10.0.0.1") is None and caps.admit(b, "10.0.0.2") is None
    assert caps.admit(c, "10.0.0.1") is None
    assert caps.admit(d, "10.0.0.1") == "3 inbound connections held"  # total first
    caps.gone(b)
    caps.gone(b)  # idempotent
    assert caps.admit(d, "10.0.0.1") == "2 inbound connections from 10.0.0.1 held"
    assert caps.admit(e, "10.0.0.3") is None and caps.refused == 2
    caps.gone(a)
    assert caps.admit(d, "10.0.0.1") is None and len(caps.held) == 3


def test_an_ipv6_host_counts_with_its_64() -> None:
    assert netgroup("10.0.0.1") == "10.0.0.1"
    assert netgroup("2001:db8:1:2::1") == netgroup("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert netgroup("2001:db8:1:3::1") == "2001:db8:1:3::/64"  # the next /64: another
    assert netgroup("::1") == "::/64" and netgroup("not-an-ip") == "not-an-ip"
    caps = InboundCaps(total=10, per_host=2)
    a, b, c, d = (object() for _ in range(4))
    assert caps.admit(a, "2001:db8:1:2::1") is None
    assert caps.admit(b, "2001:db8:1:2::2") is None
    assert caps.admit(c, "2001:db8:1:2::3") == (
        "2 inbound connections from 2001:db8:1:2::/64 held"
    )  # a fresh address of the same /64 is no new host
    assert caps.admit(d, "2001:db8:1:3::1") is None
    caps.gone(a)
    assert caps.admit(c, "2001:db8:1:2::3") is None
