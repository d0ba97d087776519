"""Phase 4, commit: everyone checks FINAL's cert, stores the block and advances.

Contract
--------
* :func:`on_final` takes FINAL for the current height only (an older one is
  already final here; a newer one waits in ``future``).  The cert must decode,
  name the height, verify against the validator set and satisfy the policy
  (``accepted_tier``); otherwise ``certs_rejected`` counts it and nothing
  changes.
* :func:`commit` (also the catch-up and state-sync path: their certs were
  checked by the bootstrap client) re-executes the block unless it is one of
  our candidates, stores block + cert durably, commits the speculative
  branch (``BlockExecutor.finalize``), drops the block's txs from the
  mempool, records the height and advances to h + 1, then replays the
  messages that waited for it.  A failing durable write abandons the
  speculation, records ``Consensus.fatal`` and raises it: the node halts at
  its last committed block (LP-0202 failure matrix, "State write fails").
* :func:`on_upgrade` replaces a stored cert by a verified stronger one
  (CERT_UPGRADE) and re-labels the height's tier.  The message loop hands it
  to a background job (:func:`upgrade_later`: at most
  :data:`MAX_UPGRADES_QUEUED` waiting, the rest dropped -- an upgrade only
  adds legs to a final height) whose verify runs on the background threads;
  one stored cert changes at a time (``Consensus.upgrades``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.policy import accepted_tier
from zapstack.errors import FatalStoreError, InvalidCert, RemoteProtocolError
from zapstack.node.engine.state import HeightRecord, log, present_legs, tier_name
from zapstack.node.wire import Message, split_final
from zapstack.zap.frames import parse_block
from zapstack.zap.views import BlockView

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

RECHECK_ALL_EVERY = 8
"""Every this many heights the mempool recheck covers every sender (else the block's)."""

MAX_UPGRADES_QUEUED = 16
"""CERT_UPGRADE checks waiting at most (more are dropped: a flood costs nothing)."""

__all__ = ["MAX_UPGRADES_QUEUED", "commit", "on_final", "on_upgrade", "upgrade_later"]


async def on_final(c: Consensus, msg: Message) -> None:
    """FINAL (cert + block) for our height: verify the cert, then :func:`commit`."""
    cert_bytes, block_bytes = split_final(msg.payload)
    if msg.height < c.height:
        return  # already final here (we may have committed it from another FINAL)
    if msg.height > c.height:
        c.future.append(msg)
        return
    c.mark("final")
    try:
        cert = cert_mod.decode(cert_bytes)
        verdict = await c.io.run(cert_mod.verify_cert, cert, c.g.vset, block_bytes=block_bytes)
        tier = accepted_tier(c.g.policy, verdict.present)
        if tier is None or cert.height != msg.height:
            raise InvalidCert(f"cert legs {sorted(verdict.present)} do not satisfy the policy")
    except (InvalidCert, RemoteProtocolError) as exc:
        c.stats["certs_rejected"] += 1
        log.warning("height %d: FINAL rejected: %s", msg.height, exc)
        return
    await commit(c, block_bytes, cert_bytes, cert.round, msg.sender)


async def commit(
    c: Consensus, block_bytes: bytes, cert_bytes: bytes, round_: int, proposer: int
) -> None:
    """Store and commit a block whose cert was verified; advance the height."""
    if c.fatal is not None:
        raise c.fatal
    block = parse_block(block_bytes, chain_id=c.g.chain_id)
    bid = block.block_id
    await _store(c, block, bid, block_bytes, cert_bytes)
    txs = list(block.txs())
    c.mempool.remove([tx.tx_id for tx in txs])
    # recheck (nonces moved, balances fell): the block's senders, everyone now and then
    everyone = block.height % RECHECK_ALL_EVERY == 0
    c.mempool.recheck(None if everyone else {tx.sender for tx in txs})
    record = _record(c, block, bid, cert_bytes, round_, proposer)
    c.mark("committed")
    record.stages_ms = c.stages
    c.history.append(record)
    del c.history[:-256]
    c.stats["finalized"] += 1
    _advance(c, block.height + 1)
    if c.on_final is not None:
        await c.on_final(record, block_bytes)
    pending, c.future = c.future, []
    for m in pending:
        await c.handle(m)


async def _store(
    c: Consensus, block: BlockView, bid: bytes, block_bytes: bytes, cert_bytes: bytes
) -> None:
    """Execute (unless speculated already), write block + cert, commit the branch."""
    if bid not in {cand.receipt.block_id for cand in c.executor.candidates}:
        await c.io.run(c.executor.receive, block)
    try:
        await c.io.run(c.blocks.put, block.height, block_bytes, cert_bytes)
        await c.io.run(c.executor.finalize, bid)
    except (FatalStoreError, OSError) as exc:
        c.executor.abandon()
        log.error("height %d: store failed; halted: %s", block.height, exc)
        if isinstance(exc, FatalStoreError):
            c.fatal = exc
            raise
        c.fatal = FatalStoreError(f"block store write failed: {exc}")
        raise c.fatal from exc


def _record(
    c: Consensus, block: BlockView, bid: bytes, cert_bytes: bytes, round_: int, proposer: int
) -> HeightRecord:
    """The height's record: the aggregator's own (with leg timings) or a fresh one."""
    cert = cert_mod.decode(cert_bytes)
    agg = c.aggs.get((block.height, round_))
    record = (
        agg.record
        if agg is not None and agg.record is not None
        else HeightRecord(
            block.height,
            round_,
            bid.hex(),
            block.tx_count,
            proposer,
            tier_name(c.g.policy, present_legs(cert)),
        )
    )
    record.state_root = block.state_root.hex()
    return record


def _advance(c: Consensus, height: int) -> None:
    """Move to round 0 of ``height``; forget Corona sessions and votes past their use."""
    now = c.io.now_ms()
    c.height = height
    c.round = 0
    c.round_started_ms = now
    c.last_final_ms = now
    c.stages = {}
    horizon = now - c.g.policy.timeout_ms - 1000
    for key in [k for k, (_, t) in c.corona.items() if t < horizon]:
        c.corona.pop(key)[0].discard()
    for key in [k for k in c.voted if k[0] < c.height - 8]:
        c.voted.pop(key)


def upgrade_later(c: Consensus, msg: Message) -> None:
    """Check CERT_UPGRADE ``msg`` in a background job (dropped if too many wait)."""
    if c.upgrades_queued < MAX_UPGRADES_QUEUED:
        c.upgrades_queued += 1
        c.spawn(_upgrade_job(c, msg))


async def _upgrade_job(c: Consensus, msg: Message) -> None:
    try:
        async with c.upgrades:
            await on_upgrade(c, msg)
    finally:
        c.upgrades_queued -= 1


async def on_upgrade(c: Consensus, msg: Message) -> None:
    """CERT_UPGRADE: keep a verified cert with more legs than the stored one."""
    old = c.blocks.cert(msg.height)
    block = c.blocks.block(msg.height)
    if old is None or block is None:
        return
    try:
        cert = cert_mod.decode(msg.payload)
        verdict = await c.io.run_background(cert_mod.verify_cert, cert, c.g.vset, block_bytes=block)
    except (InvalidCert, RemoteProtocolError):
        c.stats["certs_rejected"] += 1
        return
    if len(verdict.present) > len(present_legs(cert_mod.decode(old))):
        await c.io.run_background(c.blocks.upgrade_cert, msg.height, msg.payload)
        c.stats["cert_upgrades"] += 1
        tier = tier_name(c.g.policy, verdict.present)
        for rec in c.history:
            if rec.height == msg.height:
                rec.tier = tier
