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
until the state is synced and committed, and returns (wall, CPU of this
process) from the first request to the commit: the dial and the servers'
start-up are outside it.  The servers run on the box's other core(s), as a
peer would on its own machine; their CPU is not this process's.

It raises AssertionError if the synced root is not the source's, and
TimeoutError if the sync does not finish in :data:`SYNC_TIMEOUT_S`.  Server
processes are stopped (stdin closed, then killed after 5 s) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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

__all__ = ["SYNC_TIMEOUT_S", "NoApply", "main", "sync_from_processes"]

SYNC_TIMEOUT_S = 300.0
"""Most seconds one sync may take."""


_PEER_MAIN = "from zapstack.benchmarks.statepeer import main; raise SystemExit(main())"
"""The peer process's program (``-m`` would import this module twice: the package
imports it first, through :mod:`.statebench`)."""


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
) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one full state sync from ``peers`` processes
    serving ``block``'s state (whose root is ``root``) into a fresh store at ``path``."""
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
) -> tuple[float, float]:
    db = ZapDB.open(path, map_size=1 << 35, sync=False)
    client = BootstrapClient(db, cert_ok, NoApply(), BootstrapConfig(depth=depth, batch=16))
    driver = ClientDriver(client)
    endpoint = Endpoint(
        Qh3Binding(), NodeIdentity.generate(1), driver.handlers(), TransportConfig()
    )
    try:
        conns = [await endpoint.dial("127.0.0.1", port, node) for _, port, node in procs]
        wall, cpu = time.perf_counter(), time.process_time()
        for peer in conns:
            driver.attach(peer)
        if not await driver.wait(lambda: client.done, SYNC_TIMEOUT_S):
            raise TimeoutError(f"state sync unfinished after {SYNC_TIMEOUT_S:.0f} s")
        lap = (time.perf_counter() - wall, time.process_time() - cpu)
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
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
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
