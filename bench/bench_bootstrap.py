"""State sync throughput (serve + verify + write) vs sha256 bandwidth; 1 peer vs 3 peers.

What is measured (wall clock, this machine, one process, one thread):

* A server ZapDB holds a real chain state: genesis accounts plus ``KEYS``
  filler keys of ``VALUE`` bytes, and one real signed block whose header
  carries the state root (``zapstack.bootstrap.devchain``).
* A fresh node runs the full bootstrap pipeline -- :class:`BootstrapClient`
  over transport sessions wired in memory (:class:`LoopNet`, no sockets, no
  QUIC): the server builds every verifiable state chunk from its LMDB
  snapshot and encodes it; the client parses the reply stream, checks every
  chunk against the root (``verify_chunk``), writes the entries into its own
  ZapDB txn, then recomputes the root (sparse Merkle tree) and commits.
  Throughput = state chunk reply bytes / seconds.
* The same sync from 1 peer and from 3 peers.  The 3 peers are three
  BootstrapServers over one ZapDB in the same process on the same CPU, so the
  ratio shows the per-stream pipeline overhead, *not* network parallelism.
* Stage split (serial): serve all chunks; verify all; write + commit all.
* Native limit: hashlib.sha256 over the same number of bytes in 1 MiB pieces.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from zapstack.bootstrap import (
    BootstrapClient,
    BootstrapConfig,
    BootstrapServer,
    StateSynced,
)
from zapstack.bootstrap.devchain import Chain, cert_ok
from zapstack.bootstrap.wire import StateRequest, encode_state_request
from zapstack.testing.loopnet import LoopNet
from zapstack.verify import BlockExecutor, ThreadVerifier
from zapstack.zapdb import ZapDB, verify_chunk

KEYS = 100_000
VALUE = 96
DEPTH = 10
BATCH = 16


class _NoApply:
    def apply(self, block: object, cert: bytes) -> bytes:
        raise AssertionError("no live blocks in this benchmark")


def build_server(path: Path, verifier: ThreadVerifier) -> tuple[ZapDB, Chain]:
    db = ZapDB.open(str(path), map_size=1 << 31)
    chain = Chain(0)
    chain.genesis(db)
    txn = db.begin()
    for i in range(KEYS):
        txn.set(b"fill/%07d" % i, hashlib.sha256(b"%d" % i).digest() * (VALUE // 32))
    txn.commit()
    chain.extend(db, BlockExecutor(db, verifier), 1)
    return db, chain


def sync(server_db: ZapDB, chain: Chain, peers: int, path: Path) -> tuple[float, int, int]:
    """Bootstrap a fresh ZapDB from ``peers`` servers; return (seconds, reply bytes, entries)."""
    db = ZapDB.open(str(path), map_size=1 << 31)
    servers = [BootstrapServer(server_db) for _ in range(peers)]
    for s in servers:
        s.add_finalized(*chain.blocks[-1])
    client = BootstrapClient(db, cert_ok, _NoApply(), BootstrapConfig(depth=DEPTH, batch=BATCH))
    net = LoopNet(client)
    t0 = time.perf_counter()
    for i, s in enumerate(servers):
        net.add_server(b"P%d" % i, s, pump=False)
    net.pump()
    dt = time.perf_counter() - t0
    synced = [e for e in net.events if isinstance(e, StateSynced)]
    assert synced and db.root() == server_db.root() == synced[0].root
    served = sum(s.bytes_served for s in servers)
    for s in servers:
        s.close()
    db.close()
    return dt, served, synced[0].entries


def stages(server_db: ZapDB, path: Path) -> tuple[float, float, float]:
    server = BootstrapServer(server_db)
    root = server.pin()
    with server_db.read() as view:
        chunks = [view.chunk(DEPTH, i) for i in range(1 << DEPTH)]
    t0 = time.perf_counter()
    for start in range(0, 1 << DEPTH, BATCH):
        server.answer_state(encode_state_request(StateRequest(root, DEPTH, start, BATCH)))
    t1 = time.perf_counter()
    assert all(verify_chunk(root, c) for c in chunks)
    t2 = time.perf_counter()
    db = ZapDB.open(str(path), map_size=1 << 31)
    txn = db.begin()
    for c in chunks:
        for k, v in c.entries:
            txn.set(k, v)
    assert txn.commit() == root
    t3 = time.perf_counter()
    db.close()
    server.close()
    return t1 - t0, t2 - t1, t3 - t2


def sha256_mbps(nbytes: int) -> float:
    piece = bytes(1 << 20)
    t0 = time.perf_counter()
    for _ in range(max(1, nbytes >> 20)):
        hashlib.sha256(piece).digest()
    return max(1, nbytes >> 20) / (time.perf_counter() - t0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        verifier = ThreadVerifier(2)
        t0 = time.perf_counter()
        server_db, chain = build_server(base / "server", verifier)
        verifier.close()
        print(
            f"server state: {KEYS} filler keys x {VALUE} B, built in {time.perf_counter() - t0:.1f} s"
        )
        print(f"chunks: 2^{DEPTH} = {1 << DEPTH}, {BATCH} per STATE_CHUNK request")
        t1, nbytes, entries = sync(server_db, chain, 1, base / "c1")
        t3, _, _ = sync(server_db, chain, 3, base / "c3")
        mb = nbytes / 1e6
        print(
            f"state sync, 1 peer : {t1:6.2f} s  {mb / t1:7.2f} MB/s  ({mb:.1f} MB of chunk replies, {entries} entries)"
        )
        print(f"state sync, 3 peers: {t3:6.2f} s  {mb / t3:7.2f} MB/s  (same CPU, in-process)")
        print(f"ratio 1 peer / 3 peers (time): {t1 / t3:.2f}x")
        serve, verify, write = stages(server_db, base / "stage")
        total = serve + verify + write
        print(
            f"stages (serial): serve {serve:.2f} s ({mb / serve:.1f} MB/s), verify {verify:.2f} s "
            f"({mb / verify:.1f} MB/s), write+root+commit {write:.2f} s ({mb / write:.1f} MB/s); "
            f"sum {total:.2f} s ({mb / total:.2f} MB/s)"
        )
        sha = sha256_mbps(max(nbytes, 64 << 20)) * 1.048576
        print(f"sha256 bandwidth (hashlib, 1 MiB pieces): {sha:.0f} MB/s")
        print(
            f"state sync / sha256: {(mb / t1) / sha:.4f}  (sha256 is {sha / (mb / t1):.0f}x faster)"
        )
        server_db.close()


if __name__ == "__main__":
    main()
