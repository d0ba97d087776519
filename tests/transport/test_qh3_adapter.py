"""qh3 binding: the listener reads and sends in batches, and still serves every dialer."""

from __future__ import annotations

import asyncio
import socket

import pytest

from zapstack.transport.bindings import run_bounded
from zapstack.transport.qh3_adapter import Qh3Binding, _bound_udp_socket
from zapstack.transport.streams import StreamType

from .conftest import setup, teardown


def test_listener_uses_the_batched_udp_transport_and_serves_many_streams() -> None:
    """The listening socket is qh3's batched transport (quinn-udp receive, GSO send) --
    not the event loop's one-datagram-at-a-time endpoint -- and every byte of many
    concurrent streams from two dialers arrives intact, in both directions' packets
    (the listener's ACKs and flow-control updates go out through the same transport)."""

    async def main() -> tuple[str, dict[bytes, list[bytes]], dict[bytes, list[bytes]]]:
        sink, listener, dialers, peers, _ = await setup(Qh3Binding(), 2)
        kind = type(listener._server._transport).__name__
        sent: dict[bytes, list[bytes]] = {}

        async def one(peer: object, node: bytes, j: int) -> None:
            data = bytes([j % 251]) * (700 + 4093 * j)
            sent.setdefault(node, []).append(data)
            stream = await peer.open_stream(StreamType.TX_SUBMIT)  # type: ignore[attr-defined]
            await stream.write(data, fin=True)

        await asyncio.gather(
            *(
                one(peer, d.identity.node_id, j)
                for d, peer in zip(dialers, peers, strict=True)
                for j in range(24)
            )
        )
        await sink.wait(
            lambda: sum(1 for h in sink.streams.values() if h.end is not None) >= 48, 20
        )
        got: dict[bytes, list[bytes]] = {}
        for (node, _sid), h in sink.streams.items():
            got.setdefault(node, []).append(bytes(h.data))
        await teardown(listener, dialers)
        return kind, sent, got

    kind, sent, got = run_bounded(main(), 40)
    assert kind == "OptimizedDatagramTransport"
    assert set(got) == set(sent)
    for node, streams in sent.items():
        assert sorted(got[node]) == sorted(streams)


def test_bound_udp_socket_follows_the_host_family_and_closes_on_failure() -> None:
    four = _bound_udp_socket("127.0.0.1", 0)
    try:
        assert four.family == socket.AF_INET
        port = four.getsockname()[1]
        assert port > 0
        with pytest.raises(OSError):
            _bound_udp_socket("127.0.0.1", port)  # taken: raises, the new socket closed
    finally:
        four.close()
    try:
        six = _bound_udp_socket("::1", 0)
    except OSError:  # pragma: no cover - a box without IPv6 loopback
        return
    assert six.family == socket.AF_INET6
    six.close()
