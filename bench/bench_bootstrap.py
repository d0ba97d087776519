"""State sync throughput (serve + verify + write) vs sha256 bandwidth; 1 peer vs 3 peers.

What is measured (wall clock, this machine, one process, one thread):

* A server ZapDB holds a real chain state: genesis accounts plus ``KEYS``
  filler keys of ``VALUE`` bytes, and one real signed block whose header
  carries the state root (``zapstack.bootstrap.devchain``).
* A fresh node runs the full bootstrap pipeline -- :class:`BootstrapClient`
  over transport sessions wired in memory (:class:`LoopNet`, no sockets, no
  QUIC): the server builds every verifiable state chunk from its LMDB
  snapshot and encodes it; the client parses the reply stream, checks every
  chunk against the root while building its subtree (``ChunkLoader``), joins
  the chunks under the root, checks it and commits.
  Throughput = state chunk reply bytes / seconds.
* The same sync from 1 peer and from 3 peers.  The 3 peers are three
  BootstrapServers over one ZapDB in the same process on the same CPU, so the
  ratio shows the per-stream pipeline overhead, *not* network parallelism.
* Stage split (serial, CPU time): serve all chunks; parse the replies; verify and
  keep each chunk; join + commit; next to raw LMDB puts of the same entries.
* Native limit: hashlib.sha256 over the same number of bytes in 1 MiB pieces.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import lmdb

from zapstack.bootstrap import (
    BootstrapClient,
    BootstrapConfig,
    BootstrapServer,
    StateSynced,
)
from zapstack.bootstrap.devchain import Chain, cert_ok
from zapstack.bootstrap.readers import ChunkReplyReader
from zapstack.bootstrap.wire import StateRequest, encode_state_request
from zapstack.testing.loopnet import LoopNet
from zapstack.verify import BlockExecutor, ThreadVerifier
from zapstack.zapdb import ChunkLoader, ZapDB

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


def stages(server_db: ZapDB, path: Path) -> tuple[float, float, float, float, float]:
    """Serial stage split of one sync (CPU seconds of this process): serve every batch,
    parse the replies, verify + keep each chunk (ChunkLoader.add), join + commit; and raw
    LMDB puts of the same entries."""
    server = BootstrapServer(server_db)
    root = server.pin()
    t0 = time.process_time()
    replies = [
        (start, server.answer_state(encode_state_request(StateRequest(root, DEPTH, start, BATCH))))
        for start in range(0, 1 << DEPTH, BATCH)
    ]
    t1 = time.process_time()
    chunks = []
    for start, reply in replies:
        reader = ChunkReplyReader(DEPTH, start, BATCH)
        reader.receive_data(reply)
        while (chunk := reader.next_record()) is not None:
            chunks.append(chunk)
        reader.end_of_stream()
    t2 = time.process_time()
    db = ZapDB.open(str(path), map_size=1 << 31, sync=False)
    txn = db.begin()
    loader = ChunkLoader(txn, root, DEPTH)
    assert all(loader.add(c) for c in chunks)
    t3 = time.process_time()
    assert loader.finish() == root and txn.commit() == root
    t4 = time.process_time()
    db.close()
    server.close()
    entries = [e for c in chunks for e in c.entries]
    env = lmdb.open(str(path) + "-raw", map_size=1 << 31, sync=False, metasync=False)
    t5 = time.process_time()
    with env.begin(write=True) as raw:
        for key, value in entries:
            raw.put(key, value)
    raw_s = time.process_time() - t5
    env.close()
    return t1 - t0, t2 - t1, t3 - t2, t4 - t3, raw_s


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
        serve, parse, verify, commit, raw = stages(server_db, base / "stage")
        total = serve + parse + verify + commit
        print(
            f"stages (serial, CPU): serve {serve:.2f} s, parse {parse:.2f} s, verify + keep "
            f"{verify:.2f} s, join + commit {commit:.2f} s; sum {total:.2f} s "
            f"({mb / total:.1f} MB/s of replies); client side alone {parse + verify + commit:.2f} s"
        )
        print(f"raw LMDB puts of the same entries (CPU): {raw:.2f} s")
        sha = sha256_mbps(max(nbytes, 64 << 20)) * 1.048576
        print(f"sha256 bandwidth (hashlib, 1 MiB pieces): {sha:.0f} MB/s")
        print(
            f"state sync / sha256: {(mb / t1) / sha:.4f}  (sha256 is {sha / (mb / t1):.0f}x faster)"
        )
        server_db.close()


if __name__ == "__main__":
    main()
