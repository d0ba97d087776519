"""Light-client chunked pull: 1 provider vs k providers, and sha256 bandwidth.

What is measured (wall clock, this machine, one process):

* A synthetic multi-MiB block is pulled by :class:`zapstack.dht.ChunkPull`
  from providers that answer over an **in-memory network with an injected
  per-request latency** (``asyncio.sleep(LATENCY)`` before each response;
  no sockets, no QUIC).  Every request and response is real bytes: the
  provider decodes the GET_CHUNK, builds the CHUNK with its inclusion proof
  and encodes it; the client parses it with the streaming reader, verifies
  the proof against the chunk root, inserts it by offset and finally checks
  sha256(block) == block id.  Each provider takes at most 4 requests at once.
* Serial baseline: 1 provider.  Parallel: k = 20 providers.  Ratio = time(1) / time(k).
* The same pull with zero latency (pure CPU cost of parse + verify + insert)
  against raw hashlib.sha256 bandwidth measured in the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time

from zapstack.dht import messages, wire
from zapstack.dht.blocks import ServedBlock, synthetic_block, synthetic_layout
from zapstack.dht.chunk_actions import PullComplete, RequestChunk, RequestHeader, Stalled
from zapstack.dht.chunks import ChunkPull

BLOCK_MIB = 8
LATENCY = 0.020  # seconds per request (injected, simulated network + service time)
K = 20
MAX_IN_FLIGHT = 4
RUNS = 3


async def pull_once(served: ServedBlock, providers: int, latency: float) -> float:
    """Pull the block from ``providers`` copies of ``served``; return seconds taken."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    names = [f"prov-{i}" for i in range(providers)]
    t0 = time.perf_counter()
    pull = ChunkPull(
        served.block_id,
        names,
        layout=synthetic_layout,
        now=loop.time(),
        max_in_flight=MAX_IN_FLIGHT,
        request_timeout=30.0,
    )
    tasks: set[asyncio.Task[None]] = set()

    def pump() -> None:
        while (a := pull.next_action()) is not None:
            if isinstance(a, RequestHeader | RequestChunk):
                t = loop.create_task(serve(a))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            elif isinstance(a, PullComplete):
                done.set()
            elif isinstance(a, Stalled):
                raise RuntimeError(f"pull stalled: {a.reason}")

    async def serve(a: RequestHeader | RequestChunk) -> None:
        if latency:
            await asyncio.sleep(latency)
        req = wire.decode(a.data)  # the provider parses the request ...
        reply: messages.Message
        if isinstance(req, messages.GetChunk):
            reply, index = served.chunk_msg(req.index), req.index
        else:
            reply, index = served.header_msg(), -1
        data = wire.encode(reply)  # ... and encodes the response
        pull.receive_data(a.peer, index, data, loop.time())
        pull.stream_ended(a.peer, index, loop.time())
        pump()

    pump()
    await done.wait()
    elapsed = time.perf_counter() - t0
    assert pull.result is not None and hashlib.sha256(pull.result).digest() == served.block_id
    return elapsed


def sha256_mbps(buf: bytes) -> float:
    """Raw hashlib.sha256 throughput over ``buf`` in MB/s (median of 5)."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        hashlib.sha256(buf).digest()
        times.append(time.perf_counter() - t0)
    return len(buf) / statistics.median(times) / 1e6


def median_pull(served: ServedBlock, providers: int, latency: float) -> float:
    return statistics.median(
        asyncio.run(pull_once(served, providers, latency)) for _ in range(RUNS)
    )


def main() -> None:
    header_len = 200
    block = synthetic_block(b"\xbe" * 32, header_len, BLOCK_MIB * 1024 * 1024 - header_len)
    served = ServedBlock(block, synthetic_layout(block[:header_len]))
    mb = len(block) / 1e6
    print(
        f"block: {len(block)} bytes, {served.chunk_count} chunks of 64 KiB; "
        f"in-memory net, injected latency {LATENCY * 1000:.0f} ms per request, "
        f"{MAX_IN_FLIGHT} requests in flight per provider; median of {RUNS}"
    )
    one = median_pull(served, 1, LATENCY)
    many = median_pull(served, K, LATENCY)
    print(f"serial baseline  1 provider : {one * 1000:8.1f} ms  {mb / one:8.1f} MB/s")
    print(f"parallel        {K} providers: {many * 1000:8.1f} ms  {mb / many:8.1f} MB/s")
    print(f"ratio (1 / {K})              : {one / many:8.2f}x")
    cpu = median_pull(served, K, 0.0)
    raw = sha256_mbps(block)
    print(
        f"zero-latency pull (parse + proof + verify + insert + final sha256): {mb / cpu:8.1f} MB/s"
    )
    print(f"native limit: raw hashlib.sha256 on this machine              : {raw:8.1f} MB/s")
    print(f"pull / sha256 bandwidth                                        : {mb / cpu / raw:8.2f}")


if __name__ == "__main__":
    main()
