"""A validator's consensus duties over one height at a time (the driver's core).

Theory of operation
-------------------
Heights are decided one after another; round ``r`` of height ``h`` has the
proposer ``genesis.proposer_of(h, r)`` (round robin).  For each (h, r):

1. **Propose** (proposer only): select txs from the mempool, run them on a
   speculative ZapDB branch leaving failing ones out, build and sign the block
   frame with the post-state root, open a :class:`ConsensusRound` as the
   round's aggregator and broadcast PROPOSAL.
2. **Vote** (every validator, on PROPOSAL): verify and execute the block on a
   speculative branch (``BlockExecutor.receive``: parallel verify, serial
   nonce/balance, root check -- up to 3 candidates per height); then sign the
   four legs over the cert digests *in order of their speed*: BLS and Pulsar
   shares at once, the Corona round-1 commitment, then the Magnetar
   signature.  Each share is sent to the aggregator as soon as it exists.
3. **Aggregate** (proposer): feed shares into the round; when t Corona
   commitments are in, send CORONA_SIGNERS to the chosen signers, who answer
   with round-2 responses.  As soon as the observed tier meets the policy
   Mode the block is final: FINAL (cert + block) goes to everyone.  Legs that
   arrive later upgrade the cert (CERT_UPGRADE) until the deadline; a leg that
   never reaches threshold leaves its field empty -- the cert never waits.
4. **Commit** (everyone, on FINAL): verify the cert against the validator set
   and policy, store block + cert durably, commit the speculative branch
   (``BlockExecutor.finalize``), drop the block's txs from the mempool,
   advance to h + 1.
5. **Round change**: no FINAL within the round timeout -> abandon the round
   (aggregator: ``ConsensusRound.abandon``) and move to r + 1 with the next
   proposer.  Candidates stay on their branches (speculative width 3); a
   proposal that finds all three slots taken frees them (a newer round
   supersedes older speculation; an older block that still finalizes is
   re-executed in ``commit``), and each failed round lengthens the next
   round's timeout.

This module holds the decision logic and state; IO (sending, threads, clock)
is injected through :class:`Io` so tests drive it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.digest import CertContext, LegId
from zapstack.consensus.legs import bls as bls_leg
from zapstack.consensus.legs import magnetar as magnetar_leg
from zapstack.consensus.legs import pulsar as pulsar_leg
from zapstack.consensus.legs.corona import CoronaSigner, session_of
from zapstack.consensus.policy import accepted_tier, observed_tier
from zapstack.consensus.round import (
    ConsensusRound,
    CoronaSignersChosen,
    Finalized,
    LegAggregated,
    LegFailed,
    RoundEvent,
    TierRaised,
)
from zapstack.errors import (
    FatalStoreError,
    InvalidBlock,
    InvalidCert,
    RemoteProtocolError,
    ZapError,
)
from zapstack.mempool import Mempool
from zapstack.node.blockstore import BlockStore
from zapstack.node.genesis import Genesis, NodeKeys
from zapstack.node.wire import Message, MsgType, decode_signers, encode_final, encode_signers
from zapstack.node.wire import split_final as _split_final
from zapstack.verify.executor import BlockExecutor, execute_candidates
from zapstack.zap.frames import build_block, parse_block

__all__ = ["Consensus", "HeightRecord", "Io"]

log = logging.getLogger("zapstack.node.consensus")

_U64 = struct.Struct("<Q")
MAX_BLOCK_TXS = 2000
"""Txs a proposer puts in one block at most."""
MAX_BLOCK_BYTES = 4 * 1024 * 1024
"""Payload bytes a proposer puts in one block at most."""


class Io(Protocol):
    """What the consensus core needs from its driver."""

    def now_ms(self) -> int:
        """Monotonic milliseconds."""
        ...

    def wall_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (block timestamps only)."""
        ...

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking work off the event loop (a worker thread)."""
        ...

    def send(self, to: int, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        """Send one message to validator ``to`` (to ourselves: deliver locally)."""
        ...

    def broadcast(self, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        """Send one message to every validator, ourselves included."""
        ...


@dataclass(slots=True)
class HeightRecord:
    """What this node saw of one finalized height (status, live view, metrics)."""

    height: int
    round: int
    block_id: str
    txs: int
    proposer: int
    tier: str
    state_root: str = ""
    """The block's post-state root (every validator checked it on apply)."""
    legs_ms: dict[str, int] = field(default_factory=dict)
    """Leg -> ms after the round started when it aggregated (aggregator only)."""
    finalized_ms: int = 0
    """ms after the round started when it was final (aggregator only)."""


@dataclass(slots=True)
class _Agg:
    """The aggregator's state for one (height, round)."""

    round: ConsensusRound
    block: bytes
    started_ms: int
    record: HeightRecord | None = None
    final_sent: bool = False
    legs: dict[str, int] = field(default_factory=dict)
    """Leg label -> ms after the round start when it aggregated (-1: failed)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held around every call into ``round`` (and the events it returns): the
    round is single-threaded, and its calls run on worker threads from two tasks
    (the message loop and the tick loop)."""


class Consensus:
    """One validator's consensus state machine; see the module docstring."""

    def __init__(
        self,
        genesis: Genesis,
        keys: NodeKeys,
        executor: BlockExecutor,
        mempool: Mempool,
        blocks: BlockStore,
        io: Io,
        *,
        on_final: Callable[[HeightRecord, bytes], Awaitable[None]] | None = None,
        halt_height: int | None = None,
    ) -> None:
        self.g = genesis
        self.keys = keys
        self.executor = executor
        self.mempool = mempool
        self.blocks = blocks
        self.io = io
        self.on_final = on_final
        self.halt_height = halt_height
        """Stop deciding after this height (devnets compare roots there)."""
        self.fatal: FatalStoreError | None = None
        """Set when a durable write failed (disk full): the node halts at its last
        committed block; the operator restarts it and it re-syncs from peers."""
        self.height = executor.height + 1
        """The height being decided."""
        self.round = 0
        self.round_started_ms = io.now_ms()
        self.last_final_ms = io.now_ms()
        self.proposed: set[tuple[int, int]] = set()
        self.voted: dict[tuple[int, int], bytes] = {}
        self.corona: dict[tuple[int, int], tuple[CoronaSigner, int]] = {}
        """(height, round) -> our Corona round-1 session and when it was opened.
        Kept past finality: Corona upgrades the cert until the policy deadline."""
        self.aggs: dict[tuple[int, int], _Agg] = {}
        self.future: list[Message] = []
        self.history: list[HeightRecord] = []
        self.stats: dict[str, int] = {
            "proposed": 0,
            "votes_sent": 0,
            "finalized": 0,
            "round_changes": 0,
            "blocks_rejected": 0,
            "certs_rejected": 0,
            "cert_upgrades": 0,
        }

    # ----------------------------------------------------------------- helpers
    @property
    def halted(self) -> bool:
        """True once ``halt_height`` is final here, or after a fatal store failure."""
        if self.fatal is not None:
            return True
        return self.halt_height is not None and self.height > self.halt_height

    @property
    def me(self) -> int:
        return self.keys.index

    def round_timeout_ms(self, round_: int = 0) -> int:
        """How long round ``round_`` may take before the next proposer takes over.

        Grows by half the base per failed round (capped at 4x): a network that is
        slower than the base -- starting up, overloaded -- still reaches a round
        long enough to finish, the usual BFT liveness rule.
        """
        base = self.g.policy.timeout_ms + self.g.block_interval_ms + 2000
        return base + base * min(round_, 6) // 2

    def _ctx(self, height: int, round_: int, block_id: bytes) -> CertContext:
        return CertContext(self.g.chain_id, height, round_, block_id, self.g.vset.root)

    # -------------------------------------------------------------------- timer
    async def tick(self) -> None:
        """Called periodically: propose when due, deadlines, round changes."""
        now = self.io.now_ms()
        for key, agg in list(self.aggs.items()):
            async with agg.lock:
                await self._emit(agg, key, await self.io.run(agg.round.on_timer, now))
            if now - agg.started_ms > 4 * self.round_timeout_ms(key[1]):
                self.aggs.pop(key, None)
        if self.halted:
            return  # finished heights still aggregate their late legs; nothing new starts
        if now - self.round_started_ms > self.round_timeout_ms(self.round):
            await self._change_round(self.round + 1, now)
        key = (self.height, self.round)
        due = now - self.last_final_ms >= self.g.block_interval_ms
        if due and key not in self.proposed and self.g.proposer_of(*key) == self.me:
            self.proposed.add(key)
            await self._propose(*key)

    async def _change_round(self, round_: int, now: int) -> None:
        log.info("height %d: round %d -> %d", self.height, self.round, round_)
        stale = [
            agg
            for key, agg in self.aggs.items()
            if key[0] == self.height and key[1] < round_ and agg.record is None
        ]
        self.round = round_
        self.round_started_ms = now
        self.stats["round_changes"] += 1
        for agg in stale:  # after a call in flight on it (a final round ignores abandon)
            async with agg.lock:
                agg.round.abandon()

    # ----------------------------------------------------------------- propose
    async def _propose(self, height: int, round_: int) -> None:
        txs = self.mempool.select(MAX_BLOCK_TXS, MAX_BLOCK_BYTES)
        parent = self.executor.head
        proposer_acct = hashlib.sha256(self.keys.proposer.public_key).digest()

        def build() -> bytes:
            branch = self.executor._db.snapshot()
            try:
                included, failed = execute_candidates(branch, txs, proposer_acct)
                root = branch.root()
            finally:
                branch.discard()
            drop = [f.tx_id for f in failed if not f.nonce_ahead]
            if drop:
                self.mempool.remove(drop)
            return build_block(
                self.keys.proposer,
                height=height,
                parent=parent,
                timestamp_ms=self.io.wall_ms(),
                state_root=root,
                txs=included,
                chain_id=self.g.chain_id,
            )

        block = await self.io.run(build)
        if (height, round_) != (self.height, self.round) or parent != self.executor.head:
            return  # the chain moved on while we built
        cr = ConsensusRound(self.g.vset, self.g.policy, self.g.chain_id, height)
        cr.round = round_
        now = self.io.now_ms()
        cr.propose(block, now)
        self.aggs[(height, round_)] = _Agg(cr, block, now)
        self.stats["proposed"] += 1
        self.io.broadcast(MsgType.PROPOSAL, height, round_, block)

    # --------------------------------------------------------------- dispatch
    async def handle(self, msg: Message) -> None:
        """One message from validator ``msg.sender`` (already authenticated)."""
        if not 0 <= msg.sender < self.g.vset.n:
            return
        if self.halted and msg.height > (self.halt_height or 0):
            return
        if self.fatal is not None:
            return  # halted at the last committed block until the operator restarts us
        if msg.type is MsgType.FINAL:
            with contextlib.suppress(FatalStoreError):  # recorded in self.fatal
                await self._on_final(msg)
            return
        if msg.type is MsgType.CERT_UPGRADE:
            await self._on_upgrade(msg)
            return
        if msg.height > self.height:
            self.future.append(msg)  # we are behind; replay when we get there
            del self.future[:-512]
            return
        if msg.height < self.height and msg.type is MsgType.PROPOSAL:
            self.stats["blocks_rejected"] += 1  # late block of a fork race: discarded
            return
        handler = _HANDLERS.get(msg.type)
        if handler is not None:
            await handler(self, msg)

    # -------------------------------------------------------------------- vote
    async def _on_proposal(self, msg: Message) -> None:
        h, r = msg.height, msg.round
        if self.g.proposer_of(h, r) != msg.sender or r < self.round or (h, r) in self.voted:
            return
        if r > self.round:
            await self._change_round(r, self.io.now_ms())
        try:
            block = await self.io.run(parse_block, msg.payload, chain_id=self.g.chain_id)
            if block.height != h:
                raise InvalidBlock("proposal height does not match its block")
            if bytes(block.pubkey) != self.g.addresses[msg.sender].proposer_pk:
                raise InvalidBlock("block not signed with the proposer's genesis key")
            if len(self.executor.candidates) >= self.executor.max_candidates:
                # a newer round supersedes older speculation: free the width (a
                # FINAL for an older round's block re-executes it in commit())
                self.executor.abandon()
            await self.io.run(self.executor.receive, block)
        except (InvalidBlock, RemoteProtocolError) as exc:
            self.stats["blocks_rejected"] += 1
            log.warning("height %d round %d: proposal rejected: %s", h, r, exc)
            return
        bid = block.block_id
        self.voted[(h, r)] = bid
        ctx = self._ctx(h, r, bid)
        sk = self.keys.secrets
        to = msg.sender
        for leg, sign in ((LegId.BLS, bls_leg.sign_share), (LegId.PULSAR, pulsar_leg.sign_share)):
            share = await self.io.run(sign, sk, ctx)
            self.io.send(to, MsgType.SHARE, h, r, bytes([leg]) + share)
        if sk.corona_share is not None and self.g.vset.corona_pk:
            signer = await self.io.run(CoronaSigner, sk, session_of(ctx))
            self.corona[(h, r)] = (signer, self.io.now_ms())
            self.io.send(to, MsgType.CORONA_COMMIT, h, r, signer.commitment)
        if sk.slhdsa_sk:
            params = self.g.policy.magnetar_params
            share = await self.io.run(magnetar_leg.sign_share, sk, ctx, params)
            self.io.send(to, MsgType.SHARE, h, r, bytes([LegId.MAGNETAR]) + share)
        self.stats["votes_sent"] += 1

    async def _on_signers(self, msg: Message) -> None:
        entry = self.corona.pop((msg.height, msg.round), None)
        bid = self.voted.get((msg.height, msg.round))
        if entry is None or bid is None:
            return
        signer = entry[0]
        commitments = decode_signers(msg.payload)
        ctx = self._ctx(msg.height, msg.round, bid)
        try:
            response = await self.io.run(signer.respond, ctx, sorted(commitments), commitments)
        except ZapError as exc:
            log.warning("corona round 2 refused: %s", exc)
            return
        self.io.send(msg.sender, MsgType.CORONA_RESPONSE, msg.height, msg.round, response)

    # --------------------------------------------------------------- aggregate
    async def _on_share(self, msg: Message) -> None:
        agg = self.aggs.get((msg.height, msg.round))
        if agg is None:
            return
        now = self.io.now_ms()
        cr = agg.round
        async with agg.lock:
            if msg.type is MsgType.SHARE:
                leg = LegId(msg.payload[0]) if msg.payload[0] in (1, 2, 4) else None
                if leg is None:
                    return
                events = await self.io.run(
                    cr.on_share, leg, msg.sender, msg.payload[1:], now, msg.round
                )
            elif msg.type is MsgType.CORONA_COMMIT:
                events = await self.io.run(
                    cr.on_corona_commit, msg.sender, msg.payload, now, msg.round
                )
            else:
                events = await self.io.run(
                    cr.on_corona_response, msg.sender, msg.payload, now, msg.round
                )
            await self._emit(agg, (msg.height, msg.round), events)

    async def _emit(self, agg: _Agg, key: tuple[int, int], events: list[RoundEvent]) -> None:
        h, r = key
        upgraded = False
        for ev in events:
            if isinstance(ev, CoronaSignersChosen):
                payload = encode_signers(dict(ev.commitments))
                for i in ev.signers:
                    self.io.send(i, MsgType.CORONA_SIGNERS, h, r, payload)
            elif isinstance(ev, LegAggregated):
                agg.legs[ev.leg.label] = ev.at_ms - agg.started_ms
                if agg.record is not None:
                    agg.record.legs_ms[ev.leg.label] = agg.legs[ev.leg.label]
                    upgraded = True
            elif isinstance(ev, LegFailed):
                log.info("height %d round %d: leg %s failed: %s", h, r, ev.leg.label, ev.reason)
                agg.legs.setdefault(ev.leg.label, -1)
                if agg.record is not None:
                    agg.record.legs_ms.setdefault(ev.leg.label, -1)
            elif isinstance(ev, TierRaised):
                if agg.record is not None:
                    agg.record.tier = ev.tier.value
            elif isinstance(ev, Finalized) and not agg.final_sent:
                agg.final_sent = True
                cert = agg.round.cert()
                assert cert is not None
                block = parse_block(agg.block)
                agg.record = HeightRecord(
                    h,
                    r,
                    ev.block_id.hex(),
                    block.tx_count,
                    self.me,
                    self._tier(self._present(cert)),
                    legs_ms=dict(agg.legs),
                    finalized_ms=ev.at_ms - agg.started_ms,
                )
                self.io.broadcast(MsgType.FINAL, h, r, encode_final(cert.encode(), agg.block))
        if upgraded and agg.final_sent:
            cert = agg.round.cert()
            if cert is not None:
                self.io.broadcast(MsgType.CERT_UPGRADE, h, r, cert.encode())

    def _tier(self, present: set[LegId] | frozenset[LegId]) -> str:
        tier = observed_tier(self.g.policy.variant, present)
        return tier.value if tier is not None else "none"

    @staticmethod
    def _present(cert: cert_mod.QuasarCert) -> set[LegId]:
        return {leg for leg in LegId if cert.field(leg)}

    # ------------------------------------------------------------------ commit
    async def _on_final(self, msg: Message) -> None:
        cert_bytes, block_bytes = _split_final(msg.payload)
        if msg.height < self.height:
            return  # already final here (we may have committed it from another FINAL)
        if msg.height > self.height:
            self.future.append(msg)
            return
        try:
            cert = cert_mod.decode(cert_bytes)
            verdict = await self.io.run(
                cert_mod.verify_cert, cert, self.g.vset, block_bytes=block_bytes
            )
            tier = accepted_tier(self.g.policy, verdict.present)
            if tier is None or cert.height != msg.height:
                raise InvalidCert(f"cert legs {sorted(verdict.present)} do not satisfy the policy")
        except (InvalidCert, RemoteProtocolError) as exc:
            self.stats["certs_rejected"] += 1
            log.warning("height %d: FINAL rejected: %s", msg.height, exc)
            return
        await self.commit(block_bytes, cert_bytes, cert.round, msg.sender)

    async def commit(
        self, block_bytes: bytes, cert_bytes: bytes, round_: int, proposer: int
    ) -> None:
        """Store and commit a block whose cert was verified; advance the height.

        A failing durable write (ZapDB or the block store: disk full, I/O error)
        discards the txn, records :attr:`fatal` and raises it: the node halts at
        its last committed block (LP-0202 failure matrix, "State write fails").
        """
        if self.fatal is not None:
            raise self.fatal
        block = parse_block(block_bytes, chain_id=self.g.chain_id)
        bid = block.block_id
        if bid not in {c.receipt.block_id for c in self.executor.candidates}:
            await self.io.run(self.executor.receive, block)
        try:
            await self.io.run(self.blocks.put, block.height, block_bytes, cert_bytes)
            await self.io.run(self.executor.finalize, bid)
        except (FatalStoreError, OSError) as exc:
            self.executor.abandon()
            log.error("height %d: store failed; halted: %s", block.height, exc)
            if isinstance(exc, FatalStoreError):
                self.fatal = exc
                raise
            self.fatal = FatalStoreError(f"block store write failed: {exc}")
            raise self.fatal from exc
        self.mempool.remove([tx.tx_id for tx in block.txs()])
        cert = cert_mod.decode(cert_bytes)
        agg = self.aggs.get((block.height, round_))
        record = (
            agg.record
            if agg is not None and agg.record is not None
            else HeightRecord(
                block.height,
                round_,
                bid.hex(),
                block.tx_count,
                proposer,
                self._tier(self._present(cert)),
            )
        )
        record.state_root = block.state_root.hex()
        self.history.append(record)
        del self.history[:-256]
        self.stats["finalized"] += 1
        now = self.io.now_ms()
        self.height = block.height + 1
        self.round = 0
        self.round_started_ms = now
        self.last_final_ms = now
        horizon = now - self.g.policy.timeout_ms - 1000
        for key in [k for k, (_, t) in self.corona.items() if t < horizon]:
            self.corona.pop(key)[0].discard()
        for key in [k for k in self.voted if k[0] < self.height - 8]:
            self.voted.pop(key)
        if self.on_final is not None:
            await self.on_final(record, block_bytes)
        pending, self.future = self.future, []
        for m in pending:
            await self.handle(m)

    async def _on_upgrade(self, msg: Message) -> None:
        old = self.blocks.cert(msg.height)
        block = self.blocks.block(msg.height)
        if old is None or block is None:
            return
        try:
            cert = cert_mod.decode(msg.payload)
            verdict = await self.io.run(cert_mod.verify_cert, cert, self.g.vset, block_bytes=block)
        except (InvalidCert, RemoteProtocolError):
            self.stats["certs_rejected"] += 1
            return
        if len(verdict.present) > len(self._present(cert_mod.decode(old))):
            await self.io.run(self.blocks.upgrade_cert, msg.height, msg.payload)
            self.stats["cert_upgrades"] += 1
            tier = self._tier(verdict.present)
            for rec in self.history:
                if rec.height == msg.height:
                    rec.tier = tier


_HANDLERS: dict[MsgType, Callable[[Consensus, Message], Awaitable[None]]] = {
    MsgType.PROPOSAL: Consensus._on_proposal,
    MsgType.SHARE: Consensus._on_share,
    MsgType.CORONA_COMMIT: Consensus._on_share,
    MsgType.CORONA_RESPONSE: Consensus._on_share,
    MsgType.CORONA_SIGNERS: Consensus._on_signers,
}
"""Message type -> handler for messages of the current height."""
