"""Stream bytes over real QUIC between two processes (the transport's share of a sync)."""

from __future__ import annotations

import pytest

from zapstack.benchmarks.quicbulk import BULK_CONFIG, measure
from zapstack.transport.driver import TransportConfig


@pytest.mark.parametrize("config", [BULK_CONFIG, TransportConfig()], ids=["bulk", "node"])
def test_every_stream_is_delivered_and_timed(config: TransportConfig) -> None:
    seconds, delivered = measure("qh3", limit=4, streams=6, size=100_000, config=config)
    assert delivered == 6 * 100_000  # the receiver counted every byte and every FIN
    assert 0 < seconds < 30
