"""State at store speed: ZapDB's authenticated paths next to raw LMDB on the same entries.

Each function measures one path and, in the same run on the same entries, raw LMDB
puts (one write txn, ``txn.put`` in a loop, ``sync`` off for both: the CPU path, not
the disk's fsync).  Timings are medians, ZapDB and raw taken in turns; ``*_pct_paired``
is the median over the turns of each turn's raw/ZapDB time ratio (a shared box's speed
drifts by tens of percent between turns; the two runs of one turn see the same box).

* :func:`bulk_commit` -- ``n`` fresh keys (96-byte values) committed into an empty
  store: the commit incl. its state root (``root()`` + LMDB write), and with the
  ``set`` calls too.
* :func:`incremental` -- blocks of ``changed`` updated keys on a store of ``n``
  keys, after warm-up blocks (a running chain's steady state): µs per changed key
  for the root alone and for root + commit; raw: the same puts into an LMDB store
  holding the same ``n`` entries.  Also the tree records a block's root rewrites per
  changed key (every interior node on the changed paths, and the leaves: the hashes
  the root definition requires, ~2.2x as many at 1M keys as at 10k for 1,000-key
  blocks) and the root's µs per rewritten record; and the SHA-256 compressions per
  changed key the definition needs at the least (:func:`sha_blocks_per_key`: ~2.05x as
  many at 1M as at 10k, a floor for any implementation that keeps the roots).
* :func:`bulk_load_seconds` -- :func:`zapstack.zapdb.bulk_load` of ``n`` keys.
* :func:`state_sync` -- a fresh node bootstraps the state of a real block from
  1 or 3 in-process peers (:class:`BootstrapClient`, :class:`LoopNet`: transport
  sessions in memory): serve, parse, verify, load, commit.  MB/s of state bytes
  (keys + values), next to raw LMDB puts of the same entries; ``client``: the
  client's share alone (parse, verify, load, commit of replies built beforehand),
  what a node pays when its peers are other machines; with ``processes``,
  ``quic1`` / ``quic3``: 1 or 3 peers in their own processes over real QUIC
  (:mod:`.statepeer`), the deployed shape, on this box's other core; for those, also
  the CPU milliseconds one sync costs the client, its event-loop thread and the peers
  (``quic1_cpu_ms`` ...), medians: with fewer cores than busy threads, their sum over
  the cores bounds the wall time from below; and ``replies`` / ``reply_MB``, what the
  peers send (``bench/bench_zapdb_state.py`` times the same bytes over QUIC alone).

:func:`run` is the ``state_commit`` row of ``zap bench``; ``bench/bench_zapdb_state.py``
prints every figure.  Temporary stores live under ``tmp`` and are removed.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import lmdb

from zapstack.benchmarks import statepeer
from zapstack.benchmarks.result import RowResult, rate_ratio
from zapstack.bootstrap import BootstrapClient, BootstrapConfig, BootstrapServer, StateSynced
from zapstack.bootstrap.devchain import Chain, cert_ok
from zapstack.bootstrap.readers import ChunkReplyReader
from zapstack.bootstrap.wire import StateRequest, encode_state_request
from zapstack.testing.loopnet import LoopNet
from zapstack.verify import BlockExecutor, ThreadVerifier
from zapstack.zapdb import ChunkLoader, ZapDB, batch, bulk_load, smt

__all__ = [
    "bulk_commit",
    "bulk_load_seconds",
    "entries",
    "incremental",
    "run",
    "sha_blocks",
    "sha_blocks_per_key",
    "state_sync",
]

Items = list[tuple[bytes, bytes]]
Lap = tuple[float, float]
"""(wall seconds, CPU seconds of this process): on a shared, oversubscribed box the CPU
figure is the cost, the wall figure includes waiting for a core."""


def _now() -> Lap:
    return time.perf_counter(), time.process_time()


def _since(t0: Lap) -> Lap:
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


def _median(laps: list[Lap]) -> Lap:
    return statistics.median(w for w, _ in laps), statistics.median(c for _, c in laps)


def _paired_pct(laps: list[Lap], raws: list[Lap]) -> float:
    """Median over the turns of raw time / ZapDB time, in % (wall): each turn's two
    runs are seconds apart, so a drift in the box's speed between turns cancels."""
    return 100 * statistics.median(r[0] / z[0] for z, r in zip(laps, raws, strict=True))


def entries(n: int, seed: int, value: int = 96) -> Items:
    """``n`` distinct ``acct/`` keys with random ``value``-byte values (deterministic)."""
    rng = random.Random(seed)
    return [(b"acct/%012d" % i, rng.randbytes(value)) for i in rng.sample(range(10**12), n)]


def raw_put_seconds(path: Path, items: Items, env: lmdb.Environment | None = None) -> Lap:
    """(wall, CPU) seconds for raw LMDB puts of ``items`` in one write txn, commit included."""
    own = env is None
    env = env or lmdb.open(str(path), map_size=1 << 35, sync=False, metasync=False)
    t0 = _now()
    with env.begin(write=True) as txn:
        for key, value in items:
            txn.put(key, value)
    dt = _since(t0)
    if own:
        env.close()
        shutil.rmtree(path, ignore_errors=True)
    return dt


def _zap_commit(path: Path, items: Items) -> tuple[Lap, Lap]:
    """(root + commit, set + root + commit) times for ``items`` into an empty store."""
    db = ZapDB.open(path, map_size=1 << 35, sync=False)
    t0 = _now()
    txn = db.begin()
    for key, value in items:
        txn.set(key, value)
    t1 = _now()
    txn.commit()
    commit, full = _since(t1), _since(t0)
    db.close()
    shutil.rmtree(path, ignore_errors=True)
    return commit, full


def bulk_commit(tmp: Path, n: int, repeat: int, *, fast: bool = True) -> dict[str, float]:
    """keys/s of a commit incl. root, with sets, and of raw LMDB puts (same entries)."""
    items = entries(n, n)
    commit: list[Lap] = []
    full: list[Lap] = []
    raw: list[Lap] = []
    saved = batch.FAST, smt.FAST
    batch.FAST = smt.FAST = fast and saved[0]  # fast=False: the pure-Python tree
    try:
        for i in range(max(1, repeat)):
            raw.append(raw_put_seconds(tmp / f"raw{i}", items))
            c, f = _zap_commit(tmp / f"zap{i}", items)
            commit.append(c)
            full.append(f)
    finally:
        batch.FAST, smt.FAST = saved
    out: dict[str, float] = {}
    for name, laps in (("commit", commit), ("set_commit", full), ("raw", raw)):
        wall, cpu = _median(laps)
        out[f"{name}_keys_s"], out[f"{name}_keys_s_cpu"] = n / wall, n / cpu
    out["commit_pct_paired"] = _paired_pct(commit, raw)
    out["set_commit_pct_paired"] = _paired_pct(full, raw)
    return out


def incremental(
    tmp: Path, n: int, *, changed: int = 1000, blocks: int = 5, warm: int = 3
) -> dict[str, float]:
    """µs per changed key: root only, root + commit, raw LMDB puts (stores of ``n`` keys)."""
    value_len = 32  # bytes of every value, stored and written
    items = entries(n, n + 1, value=value_len)
    db = ZapDB.open(tmp / f"inc{n}", map_size=1 << 35, sync=False)
    bulk_load(db, items)
    env = lmdb.open(str(tmp / f"incraw{n}"), map_size=1 << 35, sync=False, metasync=False)
    with env.begin(write=True) as txn:
        txn.cursor().putmulti(sorted(items), append=True)
    rng = random.Random(n)
    roots: list[Lap] = []
    commits: list[Lap] = []
    raws: list[Lap] = []
    nodes: list[int] = []
    for block in range(warm + blocks):
        change = [(items[rng.randrange(n)][0], rng.randbytes(value_len)) for _ in range(changed)]
        raw = raw_put_seconds(tmp, change, env)
        work = db.begin()
        for key, value in change:
            work.set(key, value)
        t0 = _now()
        work.root()
        root = _since(t0)
        rewritten = work.tree_writes()
        work.commit()
        if block >= warm:
            nodes.append(rewritten)
            roots.append(root)
            commits.append(_since(t0))
            raws.append(raw)
    db.close()
    env.close()
    per = 1e6 / changed
    out: dict[str, float] = {}
    for name, laps in (("root", roots), ("commit", commits), ("raw", raws)):
        wall, cpu = _median(laps)
        out[f"{name}_us"], out[f"{name}_us_cpu"] = wall * per, cpu * per
    out["nodes_per_key"] = statistics.median(nodes) / changed
    out["root_us_per_node"] = out["root_us"] / out["nodes_per_key"]
    out["sha_blocks_per_key"] = sha_blocks_per_key(
        len(items[0][0]), value_len, out["nodes_per_key"]
    )
    out["root_ns_per_block"] = 1000 * out["root_us"] / out["sha_blocks_per_key"]
    return out


def sha_blocks(length: int) -> int:
    """SHA-256 compressions of a ``length``-byte message (FIPS 180-4 padding: 0x80 and
    a 64-bit length, rounded up to 64-byte blocks)."""
    return (length + 9 + 63) // 64


def sha_blocks_per_key(key: int, value: int, records: float) -> float:
    """The SHA-256 compressions the root definition needs per changed key at the least:
    ``kh`` and ``vh`` of the key and its new value, and each rewritten record's 65-byte
    hash input (state-root.md: its leaf and every interior node on the changed paths;
    a parent's input holds both children's hashes, so no midstate can be reused)."""
    return sha_blocks(key) + sha_blocks(value) + records * sha_blocks(65)


def bulk_load_seconds(tmp: Path, n: int) -> dict[str, float]:
    """Seconds to bulk-load ``n`` keys (32-byte values) and for raw puts of the same."""
    items = entries(n, n + 2, value=32)
    raw = raw_put_seconds(tmp / "loadraw", items)
    db = ZapDB.open(tmp / "load", map_size=1 << 35, sync=False)
    t0 = _now()
    bulk_load(db, items)
    load = _since(t0)
    db.close()
    return {"load_s": load[0], "load_s_cpu": load[1], "raw_s": raw[0], "raw_s_cpu": raw[1]}


def _server(path: Path, items: Items) -> tuple[ZapDB, Chain]:
    db = ZapDB.open(path, map_size=1 << 35, sync=False)
    chain = Chain(0)
    chain.genesis(db)
    txn = db.begin()
    for key, value in items:
        txn.set(key, value)
    txn.commit()
    verifier = ThreadVerifier(1)
    try:
        chain.extend(db, BlockExecutor(db, verifier), 1)
    finally:
        verifier.close()
    return db, chain


def _sync_once(src: ZapDB, chain: Chain, peers: int, path: Path, depth: int) -> Lap:
    db = ZapDB.open(path, map_size=1 << 35, sync=False)
    servers = [BootstrapServer(src) for _ in range(peers)]
    for server in servers:
        server.add_finalized(*chain.blocks[-1])
    client = BootstrapClient(
        db, cert_ok, statepeer.NoApply(), BootstrapConfig(depth=depth, batch=16)
    )
    net = LoopNet(client)
    t0 = _now()
    for i, server in enumerate(servers):
        net.add_server(b"P%d" % i, server, pump=False)
    net.pump()
    dt = _since(t0)
    synced = [e for e in net.events if isinstance(e, StateSynced)]
    if not synced or db.root() != src.root():
        raise AssertionError("state sync did not reach the source root")
    for server in servers:
        server.close()
    db.close()
    shutil.rmtree(path, ignore_errors=True)
    return dt


def _client_once(src: ZapDB, depth: int, path: Path) -> tuple[Lap, int, int]:
    """The client's share of one sync, timed alone: the STATE_CHUNK replies are built
    first (not timed), then parsed, verified and kept (ChunkLoader), joined and committed.
    Also the number of replies and their bytes (what the peers send)."""
    server = BootstrapServer(src)
    root = server.pin()
    total = 1 << depth
    batches = [(start, min(16, total - start)) for start in range(0, total, 16)]
    replies = [
        (
            start,
            count,
            server.answer_state(encode_state_request(StateRequest(root, depth, start, count))),
        )
        for start, count in batches
    ]
    server.close()
    db = ZapDB.open(path, map_size=1 << 35, sync=False)
    t0 = _now()
    txn = db.begin()
    loader = ChunkLoader(txn, root, depth)
    for start, count, reply in replies:
        reader = ChunkReplyReader(depth, start, count)
        reader.receive_data(reply)
        chunks = []
        while (chunk := reader.next_record()) is not None:
            chunks.append(chunk)
        if not all(loader.add_many(chunks)):  # a reply's chunks together, as the client does
            raise AssertionError("a served chunk fails the root")
        reader.end_of_stream()
    loader.finish()
    txn.commit()
    dt = _since(t0)
    if db.root() != root:
        raise AssertionError("the client did not reach the source root")
    db.close()
    shutil.rmtree(path, ignore_errors=True)
    return dt, len(replies), sum(len(reply) for _, _, reply in replies)


def state_sync(tmp: Path, n: int, repeat: int, *, processes: bool = False) -> dict[str, float]:
    """State MB/s of a full bootstrap from 1 and from 3 peers, and of raw LMDB puts;
    with ``processes`` also from 1 and 3 peers in their own processes over real QUIC
    (``quic1``, ``quic3``: :mod:`.statepeer`), with their CPU split (module docstring)."""
    items = entries(n, n + 3)
    src, chain = _server(tmp / "sync-src", items)
    with src.read() as view:
        state = sum(len(k) + len(v) for k, v in view.iterate())
    depth = max(0, min(16, (n // 100).bit_length()))  # ~100 entries a chunk
    laps: dict[str, list[Lap]] = {"sync1": [], "sync3": [], "client": [], "raw": []}
    costs: dict[str, list[statepeer.SyncLap]] = {}
    if processes:
        laps |= {"quic1": [], "quic3": []}
        costs |= {"quic1": [], "quic3": []}
    for i in range(max(1, repeat)):
        laps["sync1"].append(_sync_once(src, chain, 1, tmp / f"sync1-{i}", depth))
        laps["sync3"].append(_sync_once(src, chain, 3, tmp / f"sync3-{i}", depth))
        alone, replies, reply_bytes = _client_once(src, depth, tmp / f"syncc-{i}")
        laps["client"].append(alone)
        if processes:
            root = src.root()
            src.close()  # the peers open it in their processes
            try:
                for peers in (1, 3):
                    path = tmp / f"quic{peers}-{i}"
                    lap = statepeer.sync_from_processes(
                        tmp / "sync-src", *chain.blocks[-1], peers, path, depth, root
                    )
                    laps[f"quic{peers}"].append((lap.wall, lap.cpu))
                    costs[f"quic{peers}"].append(lap)
                    shutil.rmtree(path, ignore_errors=True)
            finally:
                src = ZapDB.open(tmp / "sync-src", map_size=1 << 35, sync=False)
        with src.read() as view:
            laps["raw"].append(raw_put_seconds(tmp / f"syncraw{i}", list(view.iterate())))
    src.close()
    mb = state / 1e6
    out = {"state_MB": mb, "chunk_depth": float(depth), "replies": float(replies)}
    out["reply_MB"] = reply_bytes / 1e6
    raw = laps["raw"]
    for name, runs in laps.items():
        wall, cpu = _median(runs)
        out[f"{name}_MBps"], out[f"{name}_MBps_cpu"] = mb / wall, mb / cpu
        if name != "raw":
            out[f"{name}_pct_paired"] = _paired_pct(runs, raw)
    for name, syncs in costs.items():
        for part in ("cpu", "loop_cpu", "peers_cpu"):
            out[f"{name}_{part}_ms"] = 1000 * statistics.median(getattr(s, part) for s in syncs)
    out["raw_ms"] = 1000 * _median(raw)[0]
    return out


def run(
    keys: int = 100_000, big: int = 1_000_000, *, repeat: int = 3, processes: bool = True
) -> RowResult:
    """The ``state_commit`` row; ``big`` = 0 skips the large-store figures; ``processes``:
    also sync from peer processes over QUIC."""
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="zap-state-"))
    try:
        fast = bulk_commit(tmp, keys, repeat)
        slow = bulk_commit(tmp, keys, 1, fast=False)
        extras = {k: fast[k] for k in ("set_commit_keys_s", "commit_pct_paired")}
        for size in sorted({max(1000, keys // 10), big} - {0}):
            inc = incremental(tmp, size, changed=min(1000, size // 10))
            extras |= {f"{k}_at_{size}": v for k, v in inc.items()}
        if big:
            extras |= {f"{k}_{big}": v for k, v in bulk_load_seconds(tmp, big).items()}
        extras |= state_sync(tmp, keys, repeat, processes=processes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RowResult(
        key="state_commit",
        op=f"State commit incl. root ({keys:,} fresh keys, 96 B values)",
        serial_label="pure-Python tree (the fallback)",
        pipelined_label="C batch merge + one putmulti per database",
        serial=slow["commit_keys_s"],
        pipelined=fast["commit_keys_s"],
        unit="keys/s",
        higher_is_better=True,
        ratio=rate_ratio(fast["commit_keys_s"], slow["commit_keys_s"]),
        spec_win="-",
        native_limit=fast["raw_keys_s"],
        native_label="raw LMDB puts of the same entries",
        notes="sync off for ZapDB and raw LMDB alike; state sync figures in MB/s of keys+values",
        extras=extras,
        seconds=time.perf_counter() - start,
    )
