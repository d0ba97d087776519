"""Shared fixture and harness for real-QUIC transport tests (127.0.0.1 only, bounded)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from zapstack.errors import WireCode
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Binding, Endpoint, TransportConfig
from zapstack.transport.events import End, HandlerAction, Reject, Reply
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType


@pytest.fixture(params=sorted(BINDINGS))
def binding(request: pytest.FixtureRequest) -> Binding:
    return BINDINGS[request.param]()


class Sink:
    """Collects bytes per stream; rejects streams whose payload starts with BAD."""

    def __init__(self) -> None:
        self.streams: dict[tuple[bytes, int], Any] = {}
        self.infos: dict[tuple[bytes, int], StreamInfo] = {}
        """What each stream's handler factory was told."""
        self.changed = asyncio.Event()

    def __call__(self, info: StreamInfo) -> Any:
        sink = self

        class Handler:
            def __init__(self) -> None:
                self.data = bytearray()
                self.end: tuple[End, int | None] | None = None

            def on_data(self, data: bytes) -> Sequence[HandlerAction]:
                self.data += data
                sink.changed.set()
                if bytes(self.data[:3]) == b"BAD":
                    self.end = (End.REJECTED, WireCode.BAD_MAGIC)
                    return (Reject(WireCode.BAD_MAGIC),)
                return NO_ACTIONS

            def on_end(self) -> Sequence[HandlerAction]:
                self.end = (End.FIN, None)
                sink.changed.set()
                if info.stream_type is StreamType.DHT_RPC:
                    return (Reply(b"pong:" + bytes(self.data), fin=True),)
                return NO_ACTIONS

            def on_terminated(self, end: End, code: int | None) -> None:
                self.end = (end, code)
                sink.changed.set()

        handler = Handler()
        self.streams[(info.peer, info.stream_id)] = handler
        self.infos[(info.peer, info.stream_id)] = info
        return handler

    async def wait(self, predicate: Any, timeout: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


HANDLED = (StreamType.TX_SUBMIT, StreamType.PROBE, StreamType.VOTE, StreamType.DHT_RPC)


async def setup(binding: Binding, n_dialers: int, **config: Any) -> tuple[Any, ...]:
    sink = Sink()
    cfg = TransportConfig(**config)
    listener = Endpoint(binding, NodeIdentity.generate(100), dict.fromkeys(HANDLED, sink), cfg)
    port = await listener.listen()
    dialers, peers = [], []
    for i in range(n_dialers):
        dialer = Endpoint(binding, NodeIdentity.generate(i + 1), {}, cfg)
        peers.append(await dialer.dial("127.0.0.1", port, listener.identity.node_id))
        dialers.append(dialer)
    inbound = {}
    for _ in range(n_dialers):
        peer = await listener.accept()
        inbound[peer.node_id] = peer
    return sink, listener, dialers, peers, inbound


async def teardown(listener: Endpoint, dialers: list[Endpoint]) -> None:
    for dialer in dialers:
        await dialer.close()
    await listener.close()
