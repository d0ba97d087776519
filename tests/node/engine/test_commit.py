"""Commit: a FINAL whose cert does not verify is rejected and never committed."""

from __future__ import annotations

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.node.wire import Message, MsgType, encode_final, split_final

from ..conftest import Net, run


def test_a_final_with_a_forged_cert_is_rejected(net: Net) -> None:
    def forge(to: int, msg: Message) -> Message | None:
        if msg.type is not MsgType.FINAL or to != 3:
            return msg
        cert_bytes, block = split_final(msg.payload)
        cert = cert_mod.decode(cert_bytes)
        bad = bytearray(cert.field(LegId.BLS))
        bad[-1] ^= 1
        forged = cert.with_field(LegId.BLS, bytes(bad)).encode()
        return Message(msg.type, msg.height, msg.round, msg.sender, encode_final(forged, block))

    net.filter = forge
    run(net.run_until(0, max_ms=3000))
    run(net.advance(1500))
    assert net.nodes[3].stats["certs_rejected"] >= 1
    assert net.nodes[3].height == 1  # never committed the forged one
    assert net.nodes[0].height > 1
