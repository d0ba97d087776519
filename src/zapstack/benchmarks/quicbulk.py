"""Stream bytes between two processes over real QUIC, with nothing else to do.

Contract
--------
:func:`measure` starts a receiver process (spawned) that listens on 127.0.0.1 and
counts PROBE streams, their bytes and their ends, discarding the data; this process
dials it, opens ``streams`` uni streams of ``size`` zero bytes (at most ``limit``
open at once: the receiver's stream credit) and returns the seconds from the first
open until the receiver reports every stream's end (FIN), and the bytes delivered.
So the figure is end-to-end delivered work, not bytes queued.  ``config`` is the
transport settings of both ends (default :data:`BULK_CONFIG`: windows large enough
for the stack's own ceiling; a node's :class:`~zapstack.transport.driver.TransportConfig`
for what a node's streams get).

It raises TimeoutError when the transfer does not finish within :data:`TIMEOUT`
seconds (saying how far it got and how long since the last progress) and
AssertionError when the receiver counted other than what was sent.  The receiver
process is joined, or killed after 10 s, whatever happens.  Used by
``bench/bench_transport.py`` (the transport's own table) and
``bench/bench_zapdb_state.py`` (the transport's share of a state sync).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing as mp
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from zapstack.transport.bindings import BINDINGS, run_bounded
from zapstack.transport.driver import Endpoint, TransportConfig
from zapstack.transport.events import End, HandlerAction
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType

__all__ = ["BULK_CONFIG", "TIMEOUT", "measure"]

BULK_CONFIG = TransportConfig(max_stream_data=4 << 20, max_data=64 << 20)
"""Windows large enough that flow control never waits (the stack's own ceiling)."""

TIMEOUT = 30.0


class _Counter:
    def __init__(self) -> None:
        self.streams = 0
        self.bytes = 0
        self.done = asyncio.Event()
        self.target = 0
        self.progress_at = time.monotonic()
        """When the last byte or FIN arrived (tells a slow run from a stalled one)."""

    def handler(self, info: StreamInfo) -> Any:
        counter = self

        class Handler:
            def on_data(self, data: bytes) -> Sequence[HandlerAction]:
                counter.bytes += len(data)
                counter.progress_at = time.monotonic()
                return NO_ACTIONS

            def on_end(self) -> Sequence[HandlerAction]:
                counter.streams += 1
                counter.progress_at = time.monotonic()
                if counter.streams >= counter.target:
                    counter.done.set()
                return NO_ACTIONS

            def on_terminated(self, end: End, code: int | None) -> None:
                return None

        return Handler()


def _receiver(
    conn: Connection, stack: str, limit: int, streams: int, base: TransportConfig
) -> None:
    async def main() -> None:
        counter = _Counter()
        counter.target = streams
        config = dataclasses.replace(base, max_streams_uni=limit)
        endpoint = Endpoint(
            BINDINGS[stack](), NodeIdentity.generate(2), {StreamType.PROBE: counter.handler}, config
        )
        port = await endpoint.listen()
        conn.send((port, endpoint.identity.node_id))
        try:
            await asyncio.wait_for(counter.done.wait(), TIMEOUT)
        except TimeoutError:
            idle = time.monotonic() - counter.progress_at
            conn.send(("timeout", counter.streams, counter.bytes, idle))
            await endpoint.close()
            return
        conn.send(("done", counter.streams, counter.bytes))
        await asyncio.sleep(0.2)  # let the last ACKs / credit go out
        await endpoint.close()

    run_bounded(main(), TIMEOUT + 10)


def _recv_bounded(conn: Connection) -> Any:
    """``conn.recv()`` that gives up after TIMEOUT (a thread cannot be cancelled)."""
    if not conn.poll(TIMEOUT + 5):
        raise TimeoutError("receiver did not report")
    return conn.recv()


def measure(
    stack: str, *, limit: int, streams: int, size: int, config: TransportConfig = BULK_CONFIG
) -> tuple[float, int]:
    """Seconds to deliver ``streams`` streams of ``size`` bytes; and bytes delivered."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_receiver, args=(child, stack, limit, streams, config), daemon=True)
    proc.start()
    try:
        port, node_id = parent.recv()
        payload = bytes(size)

        async def send() -> float:
            endpoint = Endpoint(BINDINGS[stack](), NodeIdentity.generate(1), {}, config)
            peer = await endpoint.dial("127.0.0.1", port, node_id)
            loop = asyncio.get_running_loop()
            done = loop.run_in_executor(None, _recv_bounded, parent)

            async def write_all() -> None:
                for _ in range(streams):
                    stream = await peer.open_stream(StreamType.PROBE)
                    await stream.finish(payload)

            start = time.perf_counter()
            writer = asyncio.ensure_future(write_all())
            reply = await asyncio.wait_for(done, TIMEOUT + 5)
            elapsed = time.perf_counter() - start
            if reply[0] == "timeout":
                writer.cancel()
                failed = await asyncio.gather(writer, return_exceptions=True)
                _, got_streams, got_bytes, idle = reply
                raise TimeoutError(
                    f"{got_bytes} of {streams * size} B, {got_streams}/{streams} streams "
                    f"delivered; last progress {idle:.1f} s before the deadline; "
                    f"sender: {failed[0]!r}"
                )
            await writer
            assert reply[0] == "done" and reply[1] == streams and reply[2] == streams * size
            await endpoint.close()
            return elapsed

        return run_bounded(send(), TIMEOUT + 10), streams * size
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
