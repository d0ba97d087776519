"""A validator's DHT provides every block it holds: the index, the republish wiring.

No QUIC traffic: the endpoint is built but never listens; announcements are
stubbed at ``provide`` (the Kademlia side is tested in tests/dht and, over real
QUIC, in tests/lightclient)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path
from typing import Any

from zapstack.dht.ids import Contact
from zapstack.dht.lookup import LookupResult
from zapstack.dht.messages import GetProviders, Providers
from zapstack.dht.node import OpDone, OpKind
from zapstack.dht.wire import decode
from zapstack.node.blockdht import NodeDht
from zapstack.node.blockstore import BlockStore
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint
from zapstack.transport.events import Reply
from zapstack.transport.identity import NodeIdentity

PEER = Contact(b"\x01" * 32, "127.0.0.1:1")


def _block(h: int) -> bytes:
    return b"block-%d-" % h + bytes(100)


def _dht(tmp: Path, heights: range, **kw: Any) -> tuple[NodeDht, BlockStore]:
    store = BlockStore(tmp / "blocks")
    for h in heights:
        store.put(h, _block(h), b"cert")
    endpoint = Endpoint(BINDINGS["qh3"](), NodeIdentity.generate(7), {})
    return NodeDht(endpoint, "127.0.0.1:9", store, rng=random.Random(1), **kw), store


def _id(h: int) -> bytes:
    return hashlib.sha256(_block(h)).digest()


def test_every_block_held_is_indexed_and_scheduled_newest_first(tmp_path: Path) -> None:
    """100 heights: more than the 64 a restarted node used to announce."""

    async def main() -> None:
        dht, _ = _dht(tmp_path, range(1, 101), announce_rate=10.0)
        await dht.start()
        try:
            assert await dht.index_store(100) == 100
            assert dht.heights == {_id(h): h for h in range(1, 101)}
            s = dht.schedule
            assert s is not None and len(s) == 100
            due = [s.due_at(_id(h)) for h in range(100, 0, -1)]
            assert all(d is not None for d in due)
            assert due == sorted(due)  # type: ignore[type-var]  # newest first ...
            assert due[-1] - due[0] >= 99 / 10.0 - 1e-6  # type: ignore[operator]  # ... spread
            assert not dht._loaded and not dht.node.blocks  # type: ignore[union-attr]  # no bytes
        finally:
            await dht.close()

    asyncio.run(main())


def test_a_state_synced_store_indexes_what_it_holds(tmp_path: Path) -> None:
    async def main() -> None:
        dht, _ = _dht(tmp_path, range(50, 71))
        await dht.start()
        try:
            assert await dht.index_store(80) == 21  # heights above the head are not looked at
            assert sorted(dht.heights.values()) == list(range(50, 71))
        finally:
            await dht.close()

    asyncio.run(main())


def test_the_republish_loop_announces_each_block_at_the_rate(tmp_path: Path) -> None:
    async def main() -> None:
        dht, _ = _dht(tmp_path, range(1, 31), announce_rate=1000.0)
        asked: list[bytes] = []

        async def provide(key: bytes) -> OpDone:
            asked.append(key)
            result = LookupResult((PEER,), None, (), 1)
            return OpDone(0, OpKind.PROVIDE, key, result, (PEER.node_id,))

        dht.provide = provide  # type: ignore[method-assign]
        await dht.start()
        fresh = dht.remember(31, _block(31))  # a block finalized after start
        loop = asyncio.create_task(dht.stay_joined([], 30))
        try:
            for _ in range(200):
                if len(asked) >= 31:
                    break
                await asyncio.sleep(0.02)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await dht.close()
        assert sorted(asked) == sorted([*(_id(h) for h in range(1, 31)), fresh])
        assert asked[0] == fresh  # due at once; the backlog follows, newest first
        assert asked[1:4] == [_id(30), _id(29), _id(28)]
        assert dht.provided == 31 and dht.schedule is not None and dht.schedule.announced == 31

    asyncio.run(main())


def test_a_holder_lists_itself_as_a_provider(tmp_path: Path) -> None:
    async def main() -> None:
        dht, _ = _dht(tmp_path, range(1, 4))
        dht._spawn = lambda coro: coro.close()  # type: ignore[method-assign]  # no dials out
        await dht.start()
        try:
            await dht.index_store(3)
            (reply,) = dht._answer(PEER.node_id, GetProviders(_id(2)))
            assert isinstance(reply, Reply)
            msg = decode(reply.data)
            assert isinstance(msg, Providers)
            assert [c.node_id for c in msg.providers] == [dht.identity.node_id]
            (other,) = dht._answer(PEER.node_id, GetProviders(b"\x09" * 32))
            assert isinstance(other, Reply)
            unknown = decode(other.data)
            assert isinstance(unknown, Providers) and unknown.providers == ()
        finally:
            await dht.close()

    asyncio.run(main())
