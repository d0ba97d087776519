"""Phase 2, vote: every validator checks a proposal and signs its cert legs.

Contract
--------
* :func:`on_proposal` takes a PROPOSAL from the (height, round) proposer at
  the current height, at most once per (height, round) and never for a round
  older than ours (a newer one moves us to it).  The block is parsed, its
  height and proposer key checked, and it is executed on a speculative branch
  (``BlockExecutor.receive``: parallel verify, serial nonce/balance, root
  check); a full speculative width is freed first (a newer round supersedes
  older speculation).  A bad block counts in ``blocks_rejected`` and gets no
  vote.
* Then the legs are signed over the cert digest *in order of their speed*:
  BLS and Pulsar shares; Corona: the round-1 session prepared ahead for this
  (height, round) (:mod:`.precommit`; its commitment already went to the
  aggregator) is taken, consumed once -- only when none is ready does a
  fresh round 1 run here and its commitment go out now; if CORONA_SIGNERS
  came before our vote, round 2 answers at once; then the Magnetar
  signature.  Each result is sent to the aggregator as soon as it exists.
  Then, if we propose the next height, its block is pre-built on this one
  (:mod:`.prebuild`).
* :func:`on_signers` answers CORONA_SIGNERS with our round-2 response; the
  round-1 session is used once (popped) and a refused response is logged.
  One that arrives before our vote waits (one per (height, round), this
  round or the next, from that round's proposer only) until we voted.
  CORONA_SIGNERS with no signers is the aggregator asking for our
  commitment: we send the one we hold for that session (prepared or fresh),
  never a new round 1 for a session we hold.
  One that names the signers without their commitments tells us we are not
  among them: our session is discarded (its nonces erased) at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zapstack.consensus.digest import LegId
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import magnetar as magnetar_leg
from zapstack.consensus.legs import pulsar as pulsar_leg
from zapstack.consensus.legs.corona import CoronaSigner
from zapstack.errors import InvalidBlock, RemoteProtocolError, ZapError
from zapstack.node.engine import prebuild
from zapstack.node.engine.precommit import session_id
from zapstack.node.engine.state import log
from zapstack.node.wire import Message, MsgType, decode_signers, encode_signers
from zapstack.zap.frames import parse_block
from zapstack.zap.views import BlockView

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

__all__ = ["on_proposal", "on_signers"]


async def on_proposal(c: Consensus, msg: Message) -> None:
    """Vote for the proposer's block of (msg.height, msg.round) if it checks out."""
    h, r = msg.height, msg.round
    if c.g.proposer_of(h, r) != msg.sender or r < c.round or (h, r) in c.voted:
        return
    if r > c.round:
        await c.change_round(r, c.io.now_ms())
    if msg.sender != c.me:
        c.mark("proposal")
    block = await _receive(c, msg)
    if block is None:
        return
    c.mark("executed")
    bid = block.block_id
    c.voted[(h, r)] = bid
    await _sign_legs(c, msg.sender, h, r, bid)
    c.stats["votes_sent"] += 1
    c.mark("voted")
    prebuild.start(c, block)  # the next proposer builds on it while it certifies


async def _receive(c: Consensus, msg: Message) -> BlockView | None:
    """Parse, check and speculatively execute the proposed block (None: rejected)."""
    try:
        block: BlockView = await c.io.run(parse_block, msg.payload, chain_id=c.g.chain_id)
        if block.height != msg.height:
            raise InvalidBlock("proposal height does not match its block")
        if bytes(block.pubkey) != c.g.addresses[msg.sender].proposer_pk:
            raise InvalidBlock("block not signed with the proposer's genesis key")
        if len(c.executor.candidates) >= c.executor.max_candidates:
            # a newer round supersedes older speculation: free the width (a
            # FINAL for an older round's block re-executes it in commit())
            c.executor.abandon()
        await c.io.run(c.executor.receive, block)
    except (InvalidBlock, RemoteProtocolError) as exc:
        c.stats["blocks_rejected"] += 1
        log.warning("height %d round %d: proposal rejected: %s", msg.height, msg.round, exc)
        return None
    return block


async def _sign_legs(c: Consensus, to: int, h: int, r: int, bid: bytes) -> None:
    """Sign every leg we hold a key for, fastest first; send each to the aggregator."""
    ctx = c.ctx(h, r, bid)
    sk = c.keys.secrets
    for leg, sign in ((LegId.BLS, bls_leg.sign_share), (LegId.PULSAR, pulsar_leg.sign_share)):
        share = await c.io.run(sign, sk, ctx)
        c.io.send(to, MsgType.SHARE, h, r, bytes([leg]) + share)
    if sk.corona_share is not None and c.g.vset.corona_pk:
        await _corona(c, to, h, r)
    if sk.slhdsa_sk:
        params = c.g.policy.magnetar_params
        share = await c.io.run(magnetar_leg.sign_share, sk, ctx, params)
        c.io.send(to, MsgType.SHARE, h, r, bytes([LegId.MAGNETAR]) + share)


async def _corona(c: Consensus, to: int, h: int, r: int) -> None:
    """Our Corona session for (h, r): the prepared one, else a fresh round 1."""
    signer = c.presessions.take((h, r))
    if signer is None:  # none prepared (a round change, a restart, a slow start)
        signer = await c.io.run(CoronaSigner, c.keys.secrets, session_id(c, (h, r)), c.entropy(32))
        c.io.send(to, MsgType.CORONA_COMMIT, h, r, signer.commitment)
        c.stats["corona_fresh"] += 1
    else:
        c.stats["corona_prepared"] += 1
    c.corona[(h, r)] = (signer, c.io.now_ms())
    early = c.early_signers.pop((h, r), None)
    if early is not None:
        await _respond(c, early)


async def on_signers(c: Consensus, msg: Message) -> None:
    """Corona round 2: answer the aggregator's chosen signer set with our response."""
    key = (msg.height, msg.round)
    if c.g.proposer_of(*key) != msg.sender:
        return
    if msg.payload == _ASK:
        _send_commitment(c, msg)
    elif key in c.voted:
        await _respond(c, msg)
    elif msg.height == c.height and c.round <= msg.round <= c.round + 1:
        c.early_signers[key] = msg  # answered right after our vote
        for old in [k for k in c.early_signers if k < (c.height, c.round)]:
            del c.early_signers[old]
        await _prime(c, key, msg)


async def _prime(c: Consensus, key: tuple[int, int], msg: Message) -> None:
    """Signer set known before the block: compute round 2's message-free half now."""
    signer = c.presessions.peek(key)
    commitments = decode_signers(msg.payload)
    if signer is None or not commitments.get(c.me):
        return
    try:
        await c.io.run(signer.prime, sorted(commitments), commitments)
    except ZapError as exc:  # a bad commitment: round 2 will refuse it again, and say so
        log.info("corona: priming round 2 failed: %s", exc)


def _send_commitment(c: Consensus, msg: Message) -> None:
    """The aggregator holds too few prepared commitments: send ours for that session."""
    key = (msg.height, msg.round)
    commitment = c.presessions.commitment(key)
    if commitment is None and key in c.corona:
        commitment = c.corona[key][0].commitment
    if commitment is not None:
        c.io.send(msg.sender, MsgType.CORONA_COMMIT, *key, commitment)


async def _respond(c: Consensus, msg: Message) -> None:
    """Round 2 over the block we voted for; the session is consumed (popped) first."""
    entry = c.corona.pop((msg.height, msg.round), None)
    bid = c.voted.get((msg.height, msg.round))
    if entry is None or bid is None:
        return
    signer = entry[0]
    commitments = decode_signers(msg.payload)
    if not commitments.get(c.me):  # the set is fixed without us: the nonces go now
        signer.discard()
        return
    ctx = c.ctx(msg.height, msg.round, bid)
    try:
        response = await c.io.run(signer.respond, ctx, sorted(commitments), commitments)
    except ZapError as exc:
        log.warning("corona round 2 refused: %s", exc)
        return
    c.io.send(msg.sender, MsgType.CORONA_RESPONSE, msg.height, msg.round, response)


_ASK = encode_signers({})
"""CORONA_SIGNERS with no signers: "send me your round-1 commitment"."""
