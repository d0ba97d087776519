"""State sync from peers in their own processes, over real QUIC: the deployed shape.

Contract
--------
:func:`sync_from_processes` starts ``peers`` server processes (:func:`main`),
each opening the source store at ``src_path`` read-side, serving its finalized
block's state through a :class:`~zapstack.bootstrap.BootstrapServer` on a qh3
endpoint on 127.0.0.1
(HEADER_RANGE / STATE_CHUNK, as a node serves them).  This process dials every
peer, then runs a :class:`~zapstack.bootstrap.BootstrapClient` into a fresh
store through the node's :class:`~zapstack.node.bootstrap_driver.ClientDriver`
until the state is synced and committed, and returns a :class:`SyncLap` from the
first request to the commit: wall, CPU of this process, CPU of its event-loop thread
alone, and CPU of the peer processes (each asked for its ``time.process_time()`` over
stdin just before and just after); the dial and the servers' start-up are outside it.
The servers run on the box's other core(s), as a peer would on its own machine; on a box
with fewer cores than the sync's busy threads, client and peers share them, and the
peers' CPU is what the client waited for.

It raises AssertionError if the synced root is not the source's, and
TimeoutError if the sync does not finish in :data:`SYNC_TIMEOUT_S`.  Server
processes are stopped (stdin closed, then killed after 5 s) whatever happens.
A peer process answers each ``cpu`` line on its stdin with its CPU seconds on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from zapstack.bootstrap import BootstrapClient, BootstrapConfig, BootstrapServer
from zapstack.bootstrap.devchain import cert_ok
from zapstack.node.bootstrap_driver import ClientDriver
from zapstack.node.stateserve import StateServing
from zapstack.transport.driver import Endpoint, TransportConfig
from zapstack.transport.handler import HandlerFactory
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.qh3_adapter import Qh3Binding, new_event_loop
from zapstack.transport.streams import StreamType
from zapstack.zapdb import ZapDB

__all__ = ["SYNC_TIMEOUT_S", "NoApply", "SyncLap", "main", "sync_from_processes"]

SYNC_TIMEOUT_S = 300.0
"""Most seconds one sync may take."""


_PEER_MAIN = "from zapstack.benchmarks.statepeer import main; raise SystemExit(main())"
"""The peer process's program (``-m`` would import this module twice: the package
imports it first, through :mod:`.statebench`)."""


class SyncLap(NamedTuple):
    """One sync's seconds, from the first request to the commit."""

    wall: float
    cpu: float
    """CPU of the client's process (its event-loop thread and its hashing threads)."""
    loop_cpu: float
    """CPU of the client's event-loop thread alone."""
    peers_cpu: float
    """CPU of all the peer processes together."""


class NoApply:
    """The block applier of a state-sync benchmark's client: there are no live blocks."""

    def apply(self, block: object, cert: bytes) -> bytes:
        raise AssertionError("no live blocks in a state-sync benchmark")


def _start(
    src: Path, block: Path, cert: Path, seed: int
) -> tuple[subprocess.Popen[str], int, bytes]:
    """One server process; (process, port, node id) once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PEER_MAIN, str(src), str(block), str(cert), str(seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2:
        proc.kill()
        raise RuntimeError(f"state peer did not start (said {line!r})")
    return proc, int(line[0]), bytes.fromhex(line[1])


def _peer_cpu(proc: subprocess.Popen[str]) -> float:
    """The CPU seconds peer process ``proc`` has used so far (it answers a ``cpu`` line)."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("cpu\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    try:
        return float(line)
    except ValueError:
        raise RuntimeError(f"state peer did not report its CPU (said {line!r})") from None


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sync_from_processes(
    src_path: Path, block: bytes, cert: bytes, peers: int, path: Path, depth: int, root: bytes
) -> SyncLap:
    """The seconds of one full state sync from ``peers`` processes serving ``block``'s
    state (whose root is ``root``) into a fresh store at ``path``."""
    block_file, cert_file = path.with_suffix(".blk"), path.with_suffix(".qc")
    block_file.write_bytes(block)
    cert_file.write_bytes(cert)
    procs = []
    try:
        for i in range(peers):
            procs.append(_start(src_path, block_file, cert_file, 1000 + i))
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(_client(procs, path, depth, root))
    finally:
        for proc, _, _ in procs:
            _stop(proc)
        block_file.unlink(missing_ok=True)
        cert_file.unlink(missing_ok=True)


async def _client(
    procs: Sequence[tuple[subprocess.Popen[str], int, bytes]], path: Path, depth: int, root: bytes
) -> SyncLap:
    db = ZapDB.open(path, map_size=1 << 35, sync=False)
    client = BootstrapClient(db, cert_ok, NoApply(), BootstrapConfig(depth=depth, batch=16))
    driver = ClientDriver(client)
    endpoint = Endpoint(
        Qh3Binding(), NodeIdentity.generate(1), driver.handlers(), TransportConfig()
    )
    try:
        conns = [await endpoint.dial("127.0.0.1", port, node) for _, port, node in procs]
        peers = sum(_peer_cpu(proc) for proc, _, _ in procs)  # idle now: a few µs of loop
        wall, cpu, loop = time.perf_counter(), time.process_time(), time.thread_time()
        for peer in conns:
            driver.attach(peer)
        if not await driver.wait(lambda: client.done, SYNC_TIMEOUT_S):
            raise TimeoutError(f"state sync unfinished after {SYNC_TIMEOUT_S:.0f} s")
        loop = time.thread_time() - loop  # read inside the process's window: loop <= cpu
        lap = SyncLap(
            time.perf_counter() - wall,
            time.process_time() - cpu,
            loop,
            sum(_peer_cpu(proc) for proc, _, _ in procs) - peers,
        )
        if db.root() != root:
            raise AssertionError("state sync did not reach the served root")
        return lap
    finally:
        await driver.close()
        await endpoint.close()
        db.close()


async def _serve(src: Path, block: bytes, cert: bytes, seed: int) -> None:
    db = ZapDB.open(src, map_size=1 << 35, sync=False)
    server = BootstrapServer(db)
    server.add_finalized(block, cert)
    serving = StateServing(server)  # as a node answers them: on a thread of their own
    handlers: dict[StreamType, HandlerFactory] = {
        StreamType.HEADER_RANGE: lambda info: server.handler(info.peer, info.stream_type),
        StreamType.STATE_CHUNK: serving.handler,
    }
    endpoint = Endpoint(Qh3Binding(), NodeIdentity.generate(seed), handlers, TransportConfig())
    try:
        port = await endpoint.listen()
        print(port, endpoint.identity.node_id.hex(), flush=True)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):  # until stdin closes
            print(time.process_time(), flush=True)  # any line asks: "cpu"
    finally:
        await endpoint.close()
        serving.close()
        server.close()
        db.close()


def main(argv: Sequence[str] | None = None) -> int:
    """A state peer: ``SRC_DB BLOCK_FILE CERT_FILE SEED``; prints ``PORT NODE_ID``."""
    ap = argparse.ArgumentParser(description="serve a store's state over QUIC (benchmark peer)")
    ap.add_argument("src", type=Path)
    ap.add_argument("block", type=Path)
    ap.add_argument("cert", type=Path)
    ap.add_argument("seed", type=int)
    args = ap.parse_args(argv)
    block, cert = args.block.read_bytes(), args.cert.read_bytes()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(args.src, block, cert, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
