"""The inbound caps: counted by host and in all, and the host of a socket address."""

from __future__ import annotations

from zapstack.transport.inbound import InboundCaps, host_of


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
