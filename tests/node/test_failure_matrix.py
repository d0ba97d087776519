"""LP-0202's failure-mode matrix, one scenario test per row, at the node level.

Every test injects the row's fault into a small network of validators, asserts
the spec's recovery, and that no validator loses committed data (its ZapDB and
block store stay a prefix of the majority's chain).  Rows that need real IO
(malformed QUIC frames, a peer vanishing mid-download, a disk that fills up
under a node process) run over real QUIC / real processes; the others run on
the deterministic in-process network of ``conftest.py`` (mock clock, message
filter).

==  ==========================================  =====================================
row failure                                       test
==  ==========================================  =====================================
1   Single tx fails inside block                  test_single_tx_fails_inside_block
2   Sig verify fails in parallel batch            test_sig_verify_fails_in_parallel_batch
3   Cert leg fails to aggregate                   test_cert_leg_fails_to_aggregate (and
                                                  test_consensus: Corona below threshold)
4   State write fails (disk full)                 test_state_write_fails_disk_full (+ _real_process)
5   Peer sends malformed frame                    test_peer_sends_malformed_frame
6   Partial block download                        test_partial_block_download
7   Late block in fork race                       test_late_block_in_fork_race
8   Validator falls out of consensus              test_validator_falls_out_of_consensus
9   Reorg attempt                                 test_reorg_attempt_is_impossible
==  ==========================================  =====================================
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import accepted_tier, observed_tier
from zapstack.dht.messages import GetChunk
from zapstack.errors import FatalStoreError, InvalidBlock, TransportError, WireCode, ZapError
from zapstack.mempool import Mempool
from zapstack.node import consensus as consensus_mod
from zapstack.node.blockstore import BlockStore
from zapstack.node.consensus import Consensus
from zapstack.node.devnet import free_port_base
from zapstack.node.genesis import Genesis, devnet_user, load_genesis, load_node_keys, make_devnet
from zapstack.node.lightclient import LightClient
from zapstack.node.node import Node
from zapstack.node.wire import Message, MsgType, decode, encode, split_final
from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import Endpoint
from zapstack.transport.events import End, Reply, StreamEnded
from zapstack.transport.handler import StreamInfo
from zapstack.transport.qh3_adapter import Qh3Binding
from zapstack.transport.streams import StreamType
from zapstack.verify import ThreadVerifier, apply_genesis
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META, BlockExecutor
from zapstack.zap.frames import build_block, build_transfer, parse_block, parse_tx
from zapstack.zap.views import TxView
from zapstack.zapdb import FailAt, FaultInjector, ZapDB

from .conftest import FakeIo, Net, run

# ----------------------------------------------------------------------------- harness


@dataclass
class Cluster:
    """An in-process :class:`Net` whose validators can be stopped and restarted."""

    net: Net
    home: Path
    tmp: Path
    verifiers: list[ThreadVerifier]

    @property
    def g(self) -> Genesis:
        return self.net.genesis

    def open(self, i: int, fault: FaultInjector | None = None) -> Consensus:
        """(Re)open validator ``i`` from its data (ZapDB + block store), as a restart does."""
        db = ZapDB.open(self.tmp / f"db{i}", fault_injector=fault)
        if db.meta_get(HEAD_HEIGHT_META) is None:
            txn = db.begin()
            apply_genesis(txn, self.g.allocations)
            txn.meta_set(HEAD_HEIGHT_META, (0).to_bytes(8, "little"))
            txn.meta_set(HEAD_ID_META, self.g.genesis_id)
            txn.commit()
        verifier = ThreadVerifier(1)
        self.verifiers.append(verifier)
        executor = BlockExecutor(
            db, verifier, chain_id=self.g.chain_id, genesis_id=self.g.genesis_id
        )
        keys = load_node_keys(self.home / f"node-{i}" / "node.json", self.g)
        node = Consensus(
            self.g,
            keys,
            executor,
            Mempool(),
            BlockStore(self.tmp / f"blocks{i}"),
            FakeIo(self.net, i),
        )
        node.last_final_ms = node.round_started_ms = self.net.clock_ms
        if i < len(self.net.nodes):
            self.net.nodes[i], self.net.dbs[i] = node, db
        else:
            self.net.nodes.append(node)
            self.net.dbs.append(db)
        return node

    def stop(self, i: int) -> None:
        """The operator stops validator ``i`` (its process exits: store closed)."""
        self.net.nodes[i].executor.abandon()
        self.net.dbs[i].close()

    def close(self) -> None:
        for i in range(len(self.net.nodes)):
            self.stop(i)
        for v in self.verifiers:
            v.close()


def make_cluster(home: Path, tmp: Path, faults: dict[int, FaultInjector] | None = None) -> Cluster:
    genesis = load_genesis(home / "genesis.json")
    tmp.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(Net(genesis), home, tmp, [])
    for i in range(genesis.vset.n):
        cluster.open(i, (faults or {}).get(i))
    return cluster


@pytest.fixture
def cluster(devnet_home: Path, tmp_path: Path) -> Iterator[Cluster]:
    c = make_cluster(devnet_home, tmp_path)
    yield c
    c.close()


def users(g: Genesis) -> list[Any]:
    seed = bytes.fromhex(g.raw["devnet_seed"])
    return [devnet_user(seed, i) for i in range(8)]


def transfer(g: Genesis, sender: int, nonce: int, amount: int = 10, fee: int = 2) -> bytes:
    us = users(g)
    to = hashlib.sha256(us[(sender + 1) % len(us)].public_key).digest()
    return build_transfer(us[sender], to, amount, fee, nonce, g.chain_id)


def gossip(c: Cluster, frames: list[bytes]) -> list[bytes]:
    """Admit ``frames`` into every mempool (what tx gossip does); returns their ids."""
    for frame in frames:
        for node in c.net.nodes:
            node.mempool.insert(parse_tx(frame))
    return [parse_tx(f).tx_id for f in frames]


def block_txs(node: Consensus, height: int) -> list[bytes]:
    data = node.blocks.block(height)
    assert data is not None
    return [tx.tx_id for tx in parse_block(data).txs()]


def chain(node: Consensus, upto: int | None = None) -> list[tuple[bytes | None, bytes | None]]:
    """(block, cert-block-id) per height 1..upto: what this validator committed."""
    top = node.executor.height if upto is None else upto
    out = []
    for h in range(1, top + 1):
        cert = node.blocks.cert(h)
        out.append((node.blocks.block(h), cert_mod.decode(cert).block_id if cert else None))
    return out


def assert_agree(c: Cluster, nodes: list[int] | None = None) -> None:
    """Same head, same root, same blocks at every committed height (nothing lost)."""
    idx = nodes if nodes is not None else list(range(len(c.net.nodes)))
    heads = {c.net.nodes[i].executor.head for i in idx}
    roots = {c.net.dbs[i].root() for i in idx}
    assert len(heads) == 1 and len(roots) == 1, (heads, roots)
    chains = {tuple(chain(c.net.nodes[i])) for i in idx}
    assert len(chains) == 1
    top = c.net.nodes[idx[0]].executor.height
    for i in idx:  # the committed root is the last block's certified post-state root
        data = c.net.nodes[i].blocks.block(top)
        assert data is not None and parse_block(data).state_root == c.net.dbs[i].root()


async def catch_up(c: Cluster, i: int, source: int) -> int:
    """Validator ``i`` fetches the heights it missed from ``source``: the same steps as
    ``Node._catch_up`` over HEADER_RANGE (verify each cert under the policy, then
    ``Consensus.commit``), without the socket."""
    node, src = c.net.nodes[i], c.net.nodes[source]
    fetched = 0
    while node.height <= src.executor.height:
        h = node.height
        block, cert_bytes = src.blocks.block(h), src.blocks.cert(h)
        assert block is not None and cert_bytes is not None
        cert = cert_mod.decode(cert_bytes)
        verdict = cert_mod.verify_cert(cert, c.g.vset, block_bytes=block)
        assert accepted_tier(c.g.policy, verdict.present) is not None
        await node.commit(block, cert_bytes, cert.round, source)
        fetched += 1
    return fetched


class Spy:
    """Records what a validator's executor refused (wraps ``BlockExecutor.receive``)."""

    def __init__(self, node: Consensus) -> None:
        self.errors: list[InvalidBlock] = []
        inner = node.executor.receive

        def receive(data: Any) -> Any:
            try:
                return inner(data)
            except InvalidBlock as exc:
                self.errors.append(exc)
                raise

        node.executor.receive = receive  # type: ignore[method-assign]


def evil_builder(
    monkeypatch: pytest.MonkeyPatch, c: Cluster, evil: int, corrupt: Callable[[list[TxView]], None]
) -> list[int]:
    """Validator ``evil``'s first block build is tampered with by ``corrupt`` (after the
    honest build ran and computed the post-state root); returns a one-item list that
    counts tampered builds."""
    honest = consensus_mod.execute_candidates
    acct = hashlib.sha256(c.net.nodes[evil].keys.proposer.public_key).digest()
    tampered = [0]

    def build(txn: Any, txs: list[TxView], proposer: bytes) -> Any:
        included, failed = honest(txn, txs, proposer)
        if proposer != acct or tampered[0]:
            return included, failed
        tampered[0] += 1
        corrupt(included)
        return included, []

    monkeypatch.setattr(consensus_mod, "execute_candidates", build)
    return tampered


# ----------------------------------------------------------------------------- row 1


@pytest.mark.parametrize(
    ("bad_kind", "code"),
    [("overdraft", WireCode.INSUFFICIENT_BALANCE), ("nonce gap", WireCode.BAD_NONCE)],
)
def test_single_tx_fails_inside_block(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, bad_kind: str, code: WireCode
) -> None:
    """Row 1: a proposer puts a tx that fails its order-dependent check into a block.
    Validators roll that tx back (per-tx diff), reject the block, the round is
    abandoned and the next proposer's block -- built without the tx -- is final."""
    c, g = cluster, cluster.g
    good = gossip(c, [transfer(g, 0, 0), transfer(g, 0, 1), transfer(g, 2, 0)])
    bad_frame = (
        transfer(g, 3, 0, amount=10**16)  # more than the genesis balance
        if bad_kind == "overdraft"
        else transfer(g, 3, 5)  # account nonce is 0
    )
    bad = parse_tx(bad_frame)
    tampered = evil_builder(monkeypatch, c, 1, lambda txs: txs.insert(1, bad))
    spies = [Spy(n) for n in c.net.nodes]
    roots_before = [db.root() for db in c.net.dbs]
    snaps_before = [db.snapshot_refs() for db in c.net.dbs]

    run(c.net.run_until(1, max_ms=30_000))

    assert tampered[0] == 1  # validator 1 proposed height 1 round 0 with the bad tx
    for i in (0, 2, 3):  # every other validator refused it, at the bad tx's index
        refused = [e for e in spies[i].errors if e.tx_index == 1]
        assert refused and refused[0].code is code
    record = next(r for r in c.net.nodes[0].history if r.height == 1)
    assert record.round >= 1 and record.proposer != 1  # round abandoned, next proposer
    for node in c.net.nodes:
        txs = block_txs(node, 1)
        assert bad.tx_id not in txs and set(good) <= set(txs)
    assert all(r != b for r, b in zip(roots_before, (db.root() for db in c.net.dbs), strict=True))
    assert_agree(c)
    assert [db.snapshot_refs() for db in c.net.dbs] == snaps_before  # rejected branch released


# ----------------------------------------------------------------------------- row 2


def test_sig_verify_fails_in_parallel_batch(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row 2: one tx of the block carries a bad signature.  The parallel verify batch
    joins with a verdict slice holding one invalid verdict, the block is rejected
    before a single write, and the next round's proposer reproposes the valid tx."""
    c, g = cluster, cluster.g
    frames = [transfer(g, 0, n) for n in range(4)]
    good = gossip(c, frames)

    def flip_signature(txs: list[TxView]) -> None:
        raw = bytearray(bytes(txs[2].buffer))
        raw[-1] ^= 1
        txs[2] = parse_tx(bytes(raw), verify_signatures=False)

    tampered = evil_builder(monkeypatch, c, 1, flip_signature)
    spies = [Spy(n) for n in c.net.nodes]
    root0 = c.net.dbs[0].root()

    run(c.net.run_until(1, max_ms=30_000))

    assert tampered[0] == 1
    for i in (0, 2, 3):
        assert any(e.code is WireCode.BAD_SIGNATURE for e in spies[i].errors)
    record = next(r for r in c.net.nodes[0].history if r.height == 1)
    assert record.round >= 1 and record.proposer != 1
    assert all(block_txs(n, 1) == good for n in c.net.nodes)  # the valid tx made it
    assert c.net.dbs[0].root() != root0
    assert_agree(c)


# ----------------------------------------------------------------------------- row 3

LEG_DROPS: dict[str, tuple[Callable[[Message], bool], LegId, str, bool]] = {
    # leg kept below threshold -> (drop rule, missing leg, final tier, at the fallback)
    "pulsar": (
        lambda m: m.type is MsgType.SHARE and m.payload[0] == LegId.PULSAR,
        LegId.PULSAR,
        "PQ-off",
        True,
    ),
    "magnetar": (
        lambda m: m.type is MsgType.SHARE and m.payload[0] == LegId.MAGNETAR,
        LegId.MAGNETAR,
        "PQ-strict",
        False,
    ),
}
"""Corona below threshold is ``test_consensus::test_cert_leg_below_threshold_...``."""


@pytest.mark.parametrize("leg", sorted(LEG_DROPS))
def test_cert_leg_fails_to_aggregate(cluster: Cluster, leg: str) -> None:
    """Row 3: one leg never reaches its threshold.  The cert is published at the tier
    the surviving legs give (Pulsar missing: PQ-fast unreachable, finalized at the
    deadline at the policy's Fallback PQ-off); liveness is preserved."""
    c = cluster
    drop, missing, tier, fallback = LEG_DROPS[leg]
    c.net.filter = lambda to, m: None if drop(m) else m
    run(c.net.run_until(1, max_ms=30_000))
    run(c.net.advance(c.g.policy.timeout_ms + 1000))  # past the deadline: no more upgrades
    assert min(n.height for n in c.net.nodes) > 2  # liveness: heights keep coming
    for node in c.net.nodes:
        cert = cert_mod.decode(node.blocks.cert(1) or b"")
        verdict = cert_mod.verify_cert(cert, c.g.vset, block_bytes=node.blocks.block(1))
        assert missing not in verdict.present and not cert.field(missing)
        got = observed_tier(c.g.policy.variant, verdict.present)
        assert got is not None and got.value == tier
        accepted = accepted_tier(c.g.policy, verdict.present)
        assert accepted is (c.g.policy.fallback if fallback else c.g.policy.mode)
    assert_agree(c)


# ----------------------------------------------------------------------------- row 4


def test_state_write_fails_disk_full(devnet_home: Path, tmp_path: Path) -> None:
    """Row 4: validator 3's disk fills up while it commits a block.  Its ZapDB txn is
    discarded and the node halts at its last committed block (store readable, a
    prefix of the chain); the others keep finalizing.  After operator action
    (restart without the fault) it re-syncs from a peer and agrees again."""
    disk = FailAt(0)  # ENOSPC at the first write of a commit, once armed
    disk.armed = False
    c = make_cluster(devnet_home, tmp_path, {3: disk})
    try:
        g, net = c.g, c.net
        gossip(c, [transfer(g, 0, n) for n in range(3)])
        run(net.run_until(2))
        disk.armed = True
        gossip(c, [transfer(g, 2, n) for n in range(3)])
        run(net.run_until(1))  # the next FINAL reaches validator 3's commit
        run(net.advance(3000))
        victim = net.nodes[3]
        assert disk.fired >= 1 and isinstance(victim.fatal, FatalStoreError)
        assert victim.halted and net.dbs[3].halted
        stuck = victim.executor.height
        assert stuck >= 2 and victim.height == stuck + 1
        # the others keep finalizing while validator 3 is down (its turns time out)
        run(_others_until(c, 3, stuck + 4))
        assert all(net.nodes[i].executor.height >= stuck + 4 for i in range(3))
        assert victim.executor.height == stuck  # halted: nothing more applied
        # the halted node's store is readable and equals the committed prefix
        assert chain(victim) == chain(net.nodes[0], stuck)
        prefix_root = parse_block(net.nodes[0].blocks.block(stuck) or b"").state_root
        assert net.dbs[3].root() == prefix_root
        view = net.dbs[3].read()
        view.close()
        # operator action: restart without the fault; it re-syncs from a peer
        c.stop(3)
        fresh = c.open(3)
        assert fresh.executor.height == stuck and net.dbs[3].root() == prefix_root
        assert run(catch_up(c, 3, 0)) >= 4
        run(net.run_until(fresh.height + 1))
        assert_agree(c)
        assert fresh.stats["votes_sent"] > 0  # it votes again
    finally:
        c.close()


async def _others_until(c: Cluster, down: int, height: int, max_ms: int = 120_000) -> None:
    waited = 0
    up = [n for i, n in enumerate(c.net.nodes) if i != down]
    while min(n.executor.height for n in up) < height and waited < max_ms:
        await c.net.advance(100)
        waited += 100


# ----------------------------------------------------------------------------- row 7


def test_late_block_in_fork_race(cluster: Cluster) -> None:
    """Row 7: round 0's block of height 1 is executed by everyone (speculatively) but its
    votes are lost; round 1's block is finalized.  Round 0's candidate branch is
    discarded at commit, and the round-0 block arriving late is discarded."""
    c = cluster
    c.net.filter = lambda to, m: (
        None
        if m.height == 1
        and m.round == 0
        and m.type
        in (
            MsgType.SHARE,
            MsgType.CORONA_COMMIT,
        )
        else m
    )
    refs = [db.snapshot_refs() for db in c.net.dbs]
    run(c.net.run_until(1, max_ms=30_000))
    late = next(m for _, m in c.net.delivered if m.type is MsgType.PROPOSAL and m.round == 0)
    final = next(r for r in c.net.nodes[0].history if r.height == 1)
    assert final.round >= 1 and final.block_id != parse_block(late.payload).block_id.hex()
    assert all(n.stats["votes_sent"] >= 2 for n in c.net.nodes)  # voted round 0 and 1
    roots = [db.root() for db in c.net.dbs]
    c.net.filter = None
    for i, node in enumerate(c.net.nodes):
        rejected = node.stats["blocks_rejected"]
        run(node.handle(late))  # the round-0 block arrives after height 1 is final
        assert node.stats["blocks_rejected"] == rejected + 1
        with pytest.raises(InvalidBlock, match="late block"):
            node.executor.receive(late.payload)
        assert c.net.dbs[i].root() == roots[i]
    assert [db.snapshot_refs() for db in c.net.dbs] == refs  # no speculative branch kept
    run(c.net.run_until(2))  # next round
    assert_agree(c)


# ----------------------------------------------------------------------------- row 8


def test_validator_falls_out_of_consensus(cluster: Cluster) -> None:
    """Row 8: validator 3 alone sees (and votes for) round 0's block of height 2 -- a
    local fork -- then is partitioned while the majority finalizes another block
    and more heights.  On healing, its local round is abandoned; it rejoins from
    the finalized height (catch-up) and agrees with the majority."""
    c, net = cluster, cluster.net
    run(net.run_until(1))
    assert net.nodes[0].height == 2 and c.g.proposer_of(2, 0) == 2
    partitioned = True

    def partition(to: int, m: Message) -> Message | None:
        if not partitioned:
            return m
        if m.type is MsgType.PROPOSAL and m.height == 2 and m.round == 0:
            return m if to in (2, 3) else None  # only 3 (and its proposer) see it
        return None if 3 in (to, m.sender) and to != m.sender else m

    net.filter = partition
    run(_others_until(c, 3, 5))
    lost = net.nodes[3]
    assert lost.executor.height == 1 and lost.stats["votes_sent"] >= 1
    fork = {cand.receipt.block_id for cand in lost.executor.candidates}
    final2 = cert_mod.decode(net.nodes[0].blocks.cert(2) or b"").block_id
    assert fork and final2 not in fork  # its speculative block lost the race
    assert lost.round > 0  # it kept abandoning rounds on its own
    partitioned = False
    run(net.advance(500))  # healed: it hears FINALs above its height
    assert any(m.type is MsgType.FINAL and m.height > lost.height for m in lost.future)
    assert run(catch_up(c, 3, 0)) >= 3  # rejoin from the finalized height
    assert not lost.executor.candidates or all(
        cand.receipt.block_id not in fork for cand in lost.executor.candidates
    )
    votes = lost.stats["votes_sent"]
    run(net.run_until(lost.height))
    assert lost.stats["votes_sent"] > votes
    assert cert_mod.decode(lost.blocks.cert(2) or b"").block_id == final2
    assert_agree(c)


# ----------------------------------------------------------------------------- row 9


def test_reorg_attempt_is_impossible(devnet_home: Path, tmp_path: Path) -> None:
    """Row 9: a second network of the same validators (a pre-genesis / equivocating
    fork) finalizes *different* blocks at heights 1-2 with genuinely valid certs.
    Offered to our validators as FINALs, cert upgrades, or straight to the
    executor, they are never applied: state and block store are unchanged."""
    ours = make_cluster(devnet_home, tmp_path / "ours")
    theirs = make_cluster(devnet_home, tmp_path / "theirs")
    try:
        gossip(theirs, [transfer(theirs.g, 5, 0)])  # so their blocks differ from ours
        run(ours.net.run_until(2))
        run(theirs.net.run_until(2))
        forks = [
            m for _, m in theirs.net.delivered if m.type is MsgType.FINAL and m.height in (1, 2)
        ]
        upgrades = [m for _, m in theirs.net.delivered if m.type is MsgType.CERT_UPGRADE]
        assert forks and upgrades
        for m in forks:  # valid-looking indeed: the certs verify under the policy
            cert_bytes, block = split_final(m.payload)
            verdict = cert_mod.verify_cert(
                cert_mod.decode(cert_bytes), ours.g.vset, block_bytes=block
            )
            assert accepted_tier(ours.g.policy, verdict.present) is not None
            assert block != ours.net.nodes[0].blocks.block(m.height)
        before = [
            (db.root(), n.executor.head, chain(n))
            for db, n in zip(ours.net.dbs, ours.net.nodes, strict=True)
        ]
        for node in ours.net.nodes:
            for m in [*forks, *upgrades]:
                run(node.handle(m))
            for m in forks:
                cert_bytes, block = split_final(m.payload)
                with pytest.raises(InvalidBlock, match="late block"):
                    node.executor.receive(block)
                with pytest.raises(ZapError):
                    run(node.commit(block, cert_bytes, m.round, m.sender))
        after = [
            (db.root(), n.executor.head, chain(n))
            for db, n in zip(ours.net.dbs, ours.net.nodes, strict=True)
        ]
        assert after == before
        assert all(n.stats["certs_rejected"] >= len(upgrades) for n in ours.net.nodes)
        run(ours.net.run_until(3))  # and the chain goes on from its own head
        assert_agree(ours)
    finally:
        ours.close()
        theirs.close()


# ------------------------------------------------------------------ real QUIC (rows 5, 6)

QUIC_BOUND = 40.0
"""Seconds a real-QUIC scenario may take at most."""


def real_devnet(tmp: Path) -> tuple[Path, Genesis]:
    home = tmp / "net"
    make_devnet(home, 4, base_port=free_port_base(4), users=8)
    return home, load_genesis(home / "genesis.json")


class Collect:
    """A client-side stream handler keeping whole messages (consensus or replies)."""

    def __init__(self, into: list[bytes], info: StreamInfo | None = None) -> None:
        self.into, self.buf = into, bytearray()

    def on_data(self, data: bytes) -> list[Any]:
        self.buf += data
        return []

    def on_end(self) -> list[Any]:
        self.into.append(bytes(self.buf))
        return []

    def on_terminated(self, end: End, code: int | None) -> None:
        self.buf = bytearray()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


def test_peer_sends_malformed_frame(tmp_path: Path) -> None:
    """Row 5: a peer (here: validator 1's connection to validator 0, a real node over
    real QUIC) sends malformed tx frames and malformed consensus messages.  Each bad
    stream alone is stopped (STOP_SENDING with its stage's code / STREAM_PROTOCOL_
    VIOLATION), the peer's reputation goes down per bad stream, and its other
    streams on the same connection -- a valid tx, a valid proposal -- still land:
    validator 0 admits the tx and votes on the proposal (its shares come back)."""
    home, g = real_devnet(tmp_path)
    keys1 = load_node_keys(home / "node-1" / "node.json", g)

    async def main() -> None:
        node = Node(home / "node-0")
        serving = asyncio.create_task(node.serve())
        got: list[bytes] = []
        client = Endpoint(
            Qh3Binding(), keys1.identity, {StreamType.CERT_SHARES: lambda info: Collect(got)}
        )
        try:
            a0 = g.addresses[0]
            peer = None
            for _ in range(50):
                with contextlib.suppress(TransportError, OSError):
                    peer = await client.dial(a0.host, a0.port, a0.node_id)
                    break
                await asyncio.sleep(0.1)
            assert peer is not None
            await until(lambda: 1 in node.peers)
            me = keys1.identity.node_id
            # malformed tx frames, left open: stopped by the receiver at their stage
            good_tx = transfer(g, 0, 0)
            bad_txs = [b"\x7fZIP" + good_tx[4:], good_tx[:5] + b"\x02" + good_tx[6:]]
            tx_streams = []
            for raw in bad_txs:
                s = await peer.open_stream(StreamType.TX_SUBMIT)
                await s.write(raw[:40])
                tx_streams.append(s)
            # malformed consensus messages, left open: a FINAL type byte on a PROPOSAL
            # stream, an unknown type byte on a CERT_SHARES stream
            cons_streams = []
            for stream, raw in (
                (StreamType.PROPOSAL, encode(MsgType.FINAL, 1, 0, 1, b"x" * 64)),
                (StreamType.CERT_SHARES, b"\x63" + bytes(40)),
            ):
                s = await peer.open_stream(stream)
                await s.write(raw)
                cons_streams.append(s)
            # a whole consensus message too short for its header, finished
            await (await peer.open_stream(StreamType.CERT_SHARES)).finish(b"\x02\x01")
            await until(lambda: all(s.end is not None for s in tx_streams + cons_streams))
            for s in tx_streams:
                assert s.end is not None and s.end[0] is End.STOPPED
            for s in cons_streams:
                assert s.end == (End.STOPPED, WireCode.STREAM_PROTOCOL_VIOLATION)
            await until(lambda: node.rx.reputation.score(me) <= -50)
            score = node.rx.reputation.score(me)
            # the same connection's other streams survive: a valid tx ...
            await (await peer.open_stream(StreamType.TX_SUBMIT)).finish(good_tx)
            await until(lambda: parse_tx(good_tx).tx_id in node.mempool)
            # ... and a valid proposal for height 1 from its proposer (validator 1)
            block = build_block(
                keys1.proposer,
                height=1,
                parent=g.genesis_id,
                timestamp_ms=1,
                state_root=node.db.root(),
                txs=[],
                chain_id=g.chain_id,
            )
            await (await peer.open_stream(StreamType.PROPOSAL)).finish(
                encode(MsgType.PROPOSAL, 1, 0, 1, block)
            )

            def votes() -> list[Message]:
                return [decode(m, StreamType.CERT_SHARES) for m in got]

            # BLS + Pulsar (+ Magnetar) shares and the Corona commitment come back
            await until(lambda: {m.type for m in votes()} >= {MsgType.SHARE, MsgType.CORONA_COMMIT})
            assert all(m.sender == 0 and m.height == 1 for m in votes())
            assert not peer.session.closed and not node.peers[1].session.closed
            assert node.rx.reputation.score(me) == score  # valid streams cost nothing
            stopped = [
                e
                for e in node.peers[1].events
                if isinstance(e, StreamEnded) and e.receiving and e.end is End.REJECTED
            ]
            assert len(stopped) >= len(bad_txs) + len(cons_streams)
        finally:
            node.stop()
            await asyncio.wait_for(serving, 15)
            await client.close()

    run_bounded(main(), QUIC_BOUND)


def test_partial_block_download(tmp_path: Path) -> None:
    """Row 6: a light client pulls a multi-chunk block through the DHT from three real
    validator nodes.  Two of them send half of a chunk reply and then go away
    (their connections close mid-stream).  The partial buffers are dropped, the
    chunks re-requested from the remaining provider, and the block is accepted
    because sha256(bytes) equals the certified block id."""
    home, g = real_devnet(tmp_path)
    made = make_cluster(home, tmp_path / "chain")
    us = users(g)
    to = hashlib.sha256(us[0].public_key).digest()
    gossip(
        made, [build_transfer(us[u], to, 1, 1, k, g.chain_id) for u in range(8) for k in range(60)]
    )
    run(made.net.run_until(1))
    made.close()
    block1 = BlockStore(tmp_path / "chain" / "blocks0").block(1)
    assert block1 is not None and len(block1) > 64 * 1024  # more than one 64 KiB chunk
    for i in range(3):  # validators 0-2 restart from the chain they finalized
        shutil.copytree(tmp_path / "chain" / f"db{i}", home / f"node-{i}" / "db")
        shutil.copytree(tmp_path / "chain" / f"blocks{i}", home / f"node-{i}" / "blocks")
    flaky = (0, 1)

    def half_chunk(request: Any, data: bytes) -> Any:
        if isinstance(request, GetChunk):
            return (Reply(data[: len(data) // 2], False),)  # ... and then it goes away
        return (Reply(data, True),)

    async def main() -> None:
        nodes = [Node(home / f"node-{i}", halt_height=1) for i in range(3)]
        serving = [asyncio.create_task(n.serve()) for n in nodes]
        client = LightClient(g, k=3)
        try:
            await until(lambda: all(n.dht is not None and n.dht.node for n in nodes), 15)
            for i in flaky:
                nodes[i].dht._reply = half_chunk  # type: ignore[union-attr,method-assign]
            await until(lambda: all(len(n.dht.node.routing) >= 2 for n in nodes), 20)  # type: ignore[union-attr]
            for n in nodes:
                assert n.dht is not None
                await n.dht.provide_block(1, block1)
            await client.start()
            certs = await client.certs(1, 1)
            pulls: list[Any] = []
            client.on_pull = lambda pull, providers: pulls.append((pull, providers))
            fetch = asyncio.create_task(client.refetch(1, *certs[1]))
            await until(lambda: bool(pulls), 15)
            pull, providers = pulls[0]
            assert len(providers) == 3
            addrs = [f"{g.addresses[i].host}:{g.addresses[i].port}" for i in flaky]
            await until(lambda: any(pull.partial_bytes(a) > 0 for a in addrs), 15)
            for i in flaky:
                nodes[i].stop()  # the providers disconnect mid-stream
            fetched = await fetch
            assert fetched.ok, fetched.error
            assert fetched.block_id == hashlib.sha256(block1).hexdigest()
            assert fetched.chunks >= 2 and pull.dropped_bytes > 0  # partial replies dropped
            assert not any(pull.in_flight(a) for a in addrs)
        finally:
            await client.close()
            for n in nodes:
                n.stop()
            await asyncio.wait_for(asyncio.gather(*serving), 20)

    run_bounded(main(), QUIC_BOUND)
