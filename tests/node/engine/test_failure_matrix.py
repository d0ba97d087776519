"""LP-0202's failure-mode matrix, the rows the engine handles alone (1-4, 7-9).

Each test injects the row's fault into the deterministic in-process network
of ``tests/node/conftest.py`` (mock clock, message filter, restartable
validators), asserts the spec's recovery, and that no validator loses
committed data (its ZapDB and block store stay a prefix of the majority's
chain).  The matrix's table and its real-QUIC rows (5, 6) are in
``tests/node/test_failure_matrix.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import accepted_tier, observed_tier
from zapstack.errors import FatalStoreError, InvalidBlock, WireCode, ZapError
from zapstack.node.wire import Message, MsgType, split_final
from zapstack.zap.frames import parse_block, parse_tx
from zapstack.zap.views import TxView
from zapstack.zapdb import FailAt

from ..conftest import (
    Cluster,
    Spy,
    assert_agree,
    block_txs,
    catch_up,
    chain,
    evil_builder,
    gossip,
    make_cluster,
    others_until,
    run,
    transfer,
)

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
    for node in c.net.nodes:
        node.prebuild.drop()  # a block built ahead for height 2 holds its fork
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
"""Corona below threshold is ``engine/test_aggregate.py::test_cert_leg_below_threshold_...``."""


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
        run(others_until(c, 3, stuck + 4))
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
        node.prebuild.drop()  # a block built ahead for height 2 (on the final one) holds a fork
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
    run(others_until(c, 3, 5))
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
