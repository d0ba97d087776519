"""Aggregation: a leg below threshold degrades the published tier, never blocks it."""

from __future__ import annotations

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.node.wire import MsgType

from ..conftest import Net, run


def test_cert_leg_below_threshold_degrades_the_tier_never_blocks(net: Net) -> None:
    # Corona responses never arrive: that leg cannot reach its threshold.
    net.filter = lambda to, msg: None if msg.type is MsgType.CORONA_RESPONSE else msg
    run(net.run_until(1))
    run(net.advance(4000))  # past the policy deadline
    assert min(n.height for n in net.nodes) > 1
    cert = cert_mod.decode(net.nodes[2].blocks.cert(1) or b"")
    assert not cert.field(LegId.CORONA)  # published with the leg's field empty
    assert cert.field(LegId.BLS) and cert.field(LegId.PULSAR)
    assert net.nodes[0].history[0].tier == "PQ-fast"
