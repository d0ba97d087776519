"""Loopback ports for validator processes."""

from __future__ import annotations

from zapstack.devnet.processes import _ephemeral_low, free_port_base


def test_devnet_ports_stay_below_the_ephemeral_range() -> None:
    for n in (4, 40):
        base = free_port_base(n)
        assert base >= 20000 and base + n + 1000 <= _ephemeral_low()
