"""The DHT over real QUIC (qh3, 127.0.0.1, one process): a block provided by an origin
and two replicas is found by a light client and pulled after the origin disconnects
mid-transfer (LP-0202 light-client re-fetch, issue 7 must-show)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Sequence

from zapstack.dht.blocks import synthetic_block, synthetic_layout
from zapstack.dht.messages import GetChunk, Message
from zapstack.node.adapters.dht_quic import QuicDht
from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import TransportConfig
from zapstack.transport.events import HandlerAction, Reply
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.qh3_adapter import Qh3Binding
from zapstack.zap.merkle import CHUNK_SIZE

NODES = 6


class HalfServing(QuicDht):
    """An origin that writes only the first half of every CHUNK reply, then stalls."""

    def _reply(self, request: Message, data: bytes) -> Sequence[HandlerAction]:
        if isinstance(request, GetChunk):
            return (Reply(data[: len(data) // 2], fin=False),)
        return super()._reply(request, data)


async def _until(predicate: object, timeout: float) -> None:
    async def loop() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)

    await asyncio.wait_for(loop(), timeout)


def test_block_found_and_pulled_after_origin_disconnects_mid_transfer() -> None:
    async def main() -> None:
        binding = Qh3Binding()
        cfg = TransportConfig(handshake_timeout=2.0, idle_timeout=10.0)
        nodes = [
            (HalfServing if i == 1 else QuicDht)(
                NodeIdentity.generate(500 + i), binding, rng=random.Random(i), config=cfg
            )
            for i in range(NODES)
        ]
        try:
            for n in nodes:
                await n.start()
            for n in nodes[1:]:
                joined = await n.bootstrap([nodes[0].contact])
                assert joined.result.closest  # found at least the seed
            # every node knows every other one (announced listen addresses propagated)
            await nodes[0].bootstrap([nodes[1].contact])
            assert all(len(n.node.routing) >= NODES - 2 for n in nodes if n.node)

            hlen = 128
            block = synthetic_block(b"\x07" * 32, hlen, 6 * CHUNK_SIZE + 1234)
            layout = synthetic_layout(block[:hlen])
            origin, replicas, client = nodes[1], nodes[2:4], nodes[5]
            block_id = origin.serve_block(block, layout)
            assert block_id == hashlib.sha256(block).digest()
            for n in [origin, *replicas]:
                if n is not origin:
                    n.serve_block(block, layout)
                done = await n.provide(block_id)
                assert len(done.acked) >= NODES - 2

            found = await client.get_providers(block_id)
            provs = {p.node_id: p for p in found.result.providers}
            assert set(provs) == {n.contact.node_id for n in [origin, *replicas]}
            order = [origin.contact] + [provs[r.contact.node_id] for r in replicas]
            pull, result = client.start_pull(block_id, order, synthetic_layout)

            # the origin answered the header and is now mid-way through chunk replies
            await _until(lambda: pull.partial_bytes(origin.contact.addr) > 0, 10)
            owed = pull.in_flight(origin.contact.addr)
            assert owed and not pull.done
            await origin.close()  # the serving peer disconnects mid-transfer

            got = await asyncio.wait_for(result, 15)
            assert got == block and hashlib.sha256(got).digest() == block_id
            assert pull.dropped_bytes > 0  # the origin's partial replies were dropped
            assert pull.blamed == frozenset()
            assert not pull.in_flight(origin.contact.addr)
        finally:
            for n in nodes:
                await n.close()

    run_bounded(main(), 40)
