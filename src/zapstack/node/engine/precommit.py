"""Corona round 1 ahead of the proposal: prepare, send ahead, hold, feed.

Ringtail's round 1 is message independent (Boschini et al., S&P 2025: only
round 2 is online), and our session id is H(chain, height, round, validator
set root) -- nothing of the block.  So round 1 moves off the critical path:

* :func:`refill` (from the engine's tick) starts preparing our round-1
  session for round 0 of the next ``Presessions.lookahead`` heights that lack
  one -- one session at a time, as a background job (``Consensus.spawn``) on
  the background threads (``Io.run_background``), so neither the tick nor a
  proposal ever waits for it -- and the job sends its commitment as
  CORONA_PRECOMMIT to that session's aggregator (its proposer; ourselves
  included).  A job starts only while this validator is quiet: not while a
  round-2 answer of ours may be asked for, and before our vote of the
  current round only in the first half of the block interval (the proposal
  is not due yet).  A session that lands after the chain passed its key is
  destroyed unused, as are prepared sessions of passed keys (the chain moved
  on).
* :func:`on_precommit` (aggregator side) holds commitments for keys we will
  aggregate: ``height .. height + lookahead`` of our chain, round 0 and not
  older than our (height, round), we are its proposer, and the exact
  commitment size; at most one per validator per key, so the store is
  bounded by (lookahead + 1) x n commitments.  The moment t are held --
  before the block exists -- the signer set is fixed (the first t in
  validator order) and CORONA_SIGNERS goes out (the others get the indices
  only), so round 2's inputs are at the voters before the proposal; the
  combine half of that session is prepared by a background job.  One
  arriving after our proposal goes straight into the round.
* :func:`feed` (right after we propose) hands the held commitments to the
  round -- exactly the announced signers' when the set was fixed ahead, so
  the round chooses the same set; with fewer than t, CORONA_SIGNERS with
  k = 0 asks the validators we hold nothing from for their commitment (one
  prepared ahead, or a fresh round 1 if they have none -- never a reused
  nonce).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from zapstack.consensus.digest import corona_session_id
from zapstack.consensus.legs.corona import CoronaSigner, Key, choose_signers, prepare_session
from zapstack.crypto.ringtail.params import PARAMS as RINGTAIL_PARAMS
from zapstack.errors import LocalProtocolError
from zapstack.node.engine import aggregate
from zapstack.node.wire import Message, MsgType, encode_signers

if TYPE_CHECKING:
    from zapstack.node.engine.core import Consensus

__all__ = ["COMMITMENT_BYTES", "default_entropy", "feed", "on_precommit", "refill", "session_id"]

COMMITMENT_BYTES = 2 + 32 + 7 * RINGTAIL_PARAMS.rows * (RINGTAIL_PARAMS.dbar + 1) * 256
"""Size of one Ringtail round-1 commitment (ringtail.md section 6: 702,498 bytes)."""


def session_id(c: Consensus, key: Key) -> bytes:
    """The Corona session id of (height, round) ``key`` on this chain."""
    return corona_session_id(c.g.chain_id, key[0], key[1], c.g.vset.root)


def _quiet(c: Consensus, now: int) -> bool:
    """True when preparing round 1 delays nothing of ours on the critical path."""
    if any(s.open and now - t < c.round_timeout_ms() for s, t in c.corona.values()):
        return False  # a round-2 answer of ours may still be asked for
    if (c.height, c.round) in c.voted:
        return True  # this round's vote is done: the next proposal is a block interval away
    return now - c.last_final_ms < c.g.block_interval_ms // 2  # the proposal is not due yet


def refill(c: Consensus) -> None:
    """Start preparing one missing round-1 session in the background (see module doc)."""
    c.presessions.drop_before(c.height, c.round)
    for stale in (c.precommits, c.signers_fixed, c.early_signers):
        for key in [k for k in stale if k[0] < c.height]:
            del stale[key]
    sk = c.keys.secrets
    if sk.corona_share is None or not c.g.vset.corona_pk or c.halted:
        return
    if c.refilling is not None and not c.refilling.done():
        return  # one at a time
    wanted = c.presessions.wanted(c.height)
    if not wanted or not _quiet(c, c.io.now_ms()):
        return
    key = wanted[0]
    if c.presessions.reserve(key):
        c.refilling = c.spawn(_prepare(c, key))


async def _prepare(c: Consensus, key: Key) -> None:
    """Round 1 of ``key`` on the background threads; keep it and send its commitment."""
    sk = c.keys.secrets
    signer = await c.io.run_background(CoronaSigner, sk, session_id(c, key), c.entropy(32))
    if key < (c.height, c.round):  # the chain passed it while we computed
        signer.discard()
        return
    try:
        c.presessions.add(key, signer)
    except LocalProtocolError:  # we voted meanwhile with a fresh session: this one is void
        return
    c.io.send(c.g.proposer_of(*key), MsgType.CORONA_PRECOMMIT, *key, signer.commitment)


async def on_precommit(c: Consensus, msg: Message) -> None:
    """A commitment prepared ahead for a session we aggregate: hold it or feed it."""
    key = (msg.height, msg.round)
    if not c.height <= msg.height <= c.height + c.presessions.lookahead:
        return
    if key < (c.height, c.round) or c.g.proposer_of(*key) != c.me:
        return
    if len(msg.payload) != COMMITMENT_BYTES:
        return
    if key in c.aggs:  # we proposed already: it is a late commitment like any other
        await aggregate.on_share(c, Message(MsgType.CORONA_COMMIT, *key, msg.sender, msg.payload))
        return
    if msg.round != 0:
        return  # only round 0 is prepared ahead: the store stays bounded
    held = c.precommits.setdefault(key, {})
    held.setdefault(msg.sender, msg.payload)
    chosen = choose_signers(c.g.vset, list(held))
    if chosen is not None and key not in c.signers_fixed:
        c.signers_fixed[key] = tuple(chosen)
        commitments = {i: held[i] for i in chosen}
        aggregate.send_signers(c, key, tuple(chosen), commitments)
        sid = session_id(c, key)
        c.spawn(c.io.run_background(prepare_session, c.g.vset, sid, chosen, commitments))


async def feed(c: Consensus, key: Key) -> None:
    """After our proposal: the held commitments into the round; ask for more if short."""
    held = c.precommits.pop(key, {})
    agg = c.aggs.get(key)
    if agg is None:
        return
    fixed = c.signers_fixed.get(key)
    if fixed is not None:  # announced ahead: the round must choose exactly these
        held = {i: held[i] for i in fixed}
    for sender in sorted(held):
        await aggregate.on_share(c, Message(MsgType.CORONA_COMMIT, *key, sender, held[sender]))
    if len(held) < c.g.vset.corona_threshold:
        ask = encode_signers({})
        for i in range(c.g.vset.n):
            if i not in held:
                c.io.send(i, MsgType.CORONA_SIGNERS, *key, ask)


def default_entropy(n: int) -> bytes:
    """Fresh randomness for round-1 nonces (the node's default source)."""
    return os.urandom(n)
