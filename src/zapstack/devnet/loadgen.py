"""A load generator: signed txs submitted over real QUIC TX_SUBMIT streams.

Each devnet user account (``genesis.devnet_user``) sends transfers; every tx
travels alone on its own TX_SUBMIT stream (up to the transport's 64
concurrent streams per connection), round-robin over the validators, and the
node's answer (``docs/formats/streams.md`` §TX_SUBMIT answer) decides what the
user does next (``NEXT``):

* a user has at most one tx in flight, and its nonce advances only when the
  answer says the nonce is taken: admitted, ``DUPLICATE`` (this very frame,
  or another tx at this nonce, is already pooled) or ``NONCE_TOO_LOW`` (the
  chain is past it; resync to the answer's account nonce);
* ``BAD_NONCE`` (ahead of the pool's window): resync to the answer's account
  nonce (the walk back up answers ``DUPLICATE`` for nonces already pooled);
* any other rejection (``RATE_LIMITED``, ``MEMPOOL_FULL``,
  ``INSUFFICIENT_BALANCE``, ...) or a failed submit (no answer): the *same
  frame* is resubmitted later, so a tx admitted whose answer was lost comes
  back ``DUPLICATE``;
* credit (``docs/formats/streams.md``): each validator has an allowance of
  new submits, ``CREDIT_START`` at first, one spent per submit, and reset to
  the credit of every answer that names a tx (divided by ``credit_share``, the
  number of such clients sharing the validators, rounded up); at 0 the
  validator gets nothing more.  An answer with no credit (or a failed submit) pauses that validator
  for ``PAUSE_S``, after which one probe submit is allowed.  When every
  validator is out of credit the generator sends nothing: it offers less than
  its rate instead of queueing work the chain cannot finalize.

A fraction of streams can carry deliberately malformed frames (the devnet's
"malicious peer") to exercise the reject path; they never touch a user's
nonce.  :meth:`LoadGenerator.presign` signs users' next frames before a
measurement, so that a client sharing the validators' cores does not spend
them signing during it (the frames, and so the validators' work, are the same).
It runs on the caller's event loop: one task per submitted tx, so a
slow validator never stalls the others; :meth:`LoadGenerator.run` gives
in-flight sends up to 5 s after ``stop`` and :meth:`LoadGenerator.close`
closes the one endpoint (bounded, 5 s).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from zapstack.errors import TransportError, WireCode, ZapError
from zapstack.mempool.answer import SubmitAnswer
from zapstack.node.adapters.submit import submit_tx
from zapstack.node.genesis import Genesis, devnet_user
from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Endpoint, Peer
from zapstack.transport.identity import NodeIdentity
from zapstack.zap.frames import build_transfer
from zapstack.zap.sigschemes import Signer

__all__ = ["CREDIT_START", "NEXT", "PAUSE_S", "LoadGenerator", "LoadStats", "Next"]

_BAD_FRAMES = (
    lambda f: b"\x7fZIP" + f[4:],  # stage 1: magic
    lambda f: f[:4] + b"\x09" + f[5:],  # stage 2: unknown kind
    lambda f: f[:5] + b"\x02" + f[6:],  # stage 3: version
    lambda f: f[:21] + b"\xff\xff\x00\x00" + f[25:],  # stage 4: offset overrun
    lambda f: f[:-1] + bytes([f[-1] ^ 1]),  # stage 4: bad signature
)

PAUSE_S = 0.2
"""Seconds a validator that answered with no credit is left alone."""
CREDIT_START = 64
"""Submits a validator is sent before its first answer (one connection's stream window)."""


class Next(enum.Enum):
    """What a user does after an answer."""

    ADVANCE = "advance"
    """The nonce is taken: the next tx uses the next nonce."""
    RESYNC = "resync"
    """Restart from the answer's account nonce."""
    RETRY = "retry"
    """Resubmit the same frame later."""


NEXT: dict[WireCode, Next] = {
    WireCode.NO_ERROR: Next.ADVANCE,
    WireCode.DUPLICATE: Next.ADVANCE,
    WireCode.NONCE_TOO_LOW: Next.RESYNC,
    WireCode.BAD_NONCE: Next.RESYNC,
}
"""Answer code -> the user's next step (any other code, or no answer: RETRY)."""


@dataclass(slots=True)
class LoadStats:
    """What the generator did."""

    sent: int = 0
    """Submits started (malformed ones included)."""
    malformed: int = 0
    """Deliberately malformed frames sent."""
    failed: int = 0
    """Submits with no answer (connection lost, timeout)."""
    admitted: int = 0
    """Txs the node admitted."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Answer code name -> count of rejections (malformed frames included)."""
    per_validator: dict[int, int] = field(default_factory=dict)
    """Validator index -> answers received from it."""


class LoadGenerator:
    """Submits ``rate`` txs/s (approximately) until stopped."""

    def __init__(
        self,
        genesis: Genesis,
        *,
        users: int = 64,
        rate: float = 200.0,
        malformed_every: int = 0,
        seed: int = 1,
        signers: list[Signer] | None = None,
        fee: tuple[int, int] = (1, 50),
        credit_share: int = 1,
    ) -> None:
        """``signers``: the accounts to send from (default: the first ``users`` devnet
        users); ``fee``: the range fees are drawn from; ``credit_share``: how many
        clients like this one share each validator's allowance (this one takes its
        share of every credit figure, rounded up)."""
        if credit_share < 1:
            raise ValueError("credit_share >= 1")
        self.credit_share = credit_share
        self._start_credit = -(-CREDIT_START // credit_share)
        """This client's share of ``CREDIT_START`` (rounded up)."""
        self.g = genesis
        devnet_seed = bytes.fromhex(genesis.raw.get("devnet_seed", ""))
        self.users: list[Signer] = signers or [devnet_user(devnet_seed, i) for i in range(users)]
        self.nonces = [0] * len(self.users)
        self.pending: list[bytes | None] = [None] * len(self.users)
        """Per user: the frame at its current nonce, until an answer settles it."""
        self.ahead: list[dict[int, bytes]] = [{} for _ in self.users]
        """Per user: frames signed ahead of time by :meth:`presign`, by nonce."""
        self.fee = fee
        self.sent_at: dict[bytes, float] = {}
        """Each user frame -> when it was first submitted (loop time)."""
        self.admitted_at: dict[bytes, float] = {}
        """Each admitted user frame -> when the submit that was admitted started."""
        self._busy: set[int] = set()
        self._paused: dict[int, float] = {}
        self.credit: dict[int, int] = {}
        """Validator index -> new submits it may still be sent (``CREDIT_START`` at first)."""
        self.rate = rate
        self.malformed_every = malformed_every
        self.rng = random.Random(seed)
        self.stats = LoadStats()
        self.peers: dict[int, Peer] = {}
        self.endpoint: Endpoint | None = None

    async def connect(self, binding: str = "qh3") -> None:
        """Dial every validator not yet connected, all at once (one endpoint)."""
        if self.endpoint is None:
            self.endpoint = Endpoint(BINDINGS[binding](), NodeIdentity.generate(), {})
        endpoint = self.endpoint

        async def dial(index: int) -> None:
            a = self.g.addresses[index]
            try:
                self.peers[index] = await endpoint.dial(a.host, a.port, a.node_id)
            except (TransportError, OSError):
                return

        missing = [
            a.index
            for a in self.g.addresses
            if a.index not in self.peers or self.peers[a.index].session.closed
        ]
        await asyncio.gather(*(dial(i) for i in missing))

    def _next_tx(self, u: int | None = None) -> tuple[int, bytes]:
        """An idle user (``u`` or a random one) and its frame at its current nonce
        (the same frame again until an answer settles it)."""
        if u is None:
            u = self.rng.randrange(len(self.users))
        frame = self.pending[u]
        if frame is None:
            frame = self.ahead[u].pop(self.nonces[u], None)
        if frame is None:
            recipient = hashlib.sha256(self.users[(u + 1) % len(self.users)].public_key).digest()
            amount, fee = self.rng.randrange(1, 1000), self.rng.randrange(*self.fee)
            frame = build_transfer(
                self.users[u], recipient, amount, fee, self.nonces[u], self.g.chain_id
            )
            self.pending[u] = frame
        return u, frame

    def presign(self, per_user: int, until: float, clock: Callable[[], float]) -> int:
        """Sign up to ``per_user`` frames ahead for every user (nonces from its
        current one), one nonce for everyone at a time, stopping once ``clock()``
        passes ``until``; returns how many were signed.

        The frames are the very ones :meth:`_next_tx` would build (a random
        amount and fee, the next user as recipient); only *when* the client pays
        for the signature moves, so the validators see the same work.  A user
        resynced to another nonce keeps the frames still ahead of it.
        """
        signed = 0
        for k in range(per_user):
            for u, signer in enumerate(self.users):
                if signed % 256 == 0 and clock() >= until:
                    return signed
                nonce = self.nonces[u] + k
                if nonce in self.ahead[u]:
                    continue
                recipient = hashlib.sha256(self.users[(u + 1) % len(self.users)].public_key)
                amount, fee = self.rng.randrange(1, 1000), self.rng.randrange(*self.fee)
                self.ahead[u][nonce] = build_transfer(
                    signer, recipient.digest(), amount, fee, nonce, self.g.chain_id
                )
                signed += 1
        return signed

    def settle(self, u: int, answer: SubmitAnswer | None) -> Next:
        """Apply the node's answer (``None``: the submit failed) to user ``u``."""
        step = NEXT.get(answer.code, Next.RETRY) if answer is not None else Next.RETRY
        if step is Next.RETRY:
            return step
        assert answer is not None
        self.pending[u] = None
        if step is Next.ADVANCE:
            self.nonces[u] += 1
        elif answer.code is WireCode.NONCE_TOO_LOW:
            self.nonces[u] = max(self.nonces[u] + 1, answer.account_nonce)
        else:
            self.nonces[u] = answer.account_nonce
        return step

    def _count(self, index: int, answer: SubmitAnswer | None, now: float) -> None:
        """Book an answer from validator ``index`` (``None``: the submit failed)."""
        st = self.stats
        if answer is None:
            st.failed += 1
            self._paused[index] = now + PAUSE_S
            return
        st.per_validator[index] = st.per_validator.get(index, 0) + 1
        if answer.admitted:
            st.admitted += 1
        else:
            st.rejected[answer.code.name] = st.rejected.get(answer.code.name, 0) + 1
        if answer.tx_id:  # a stream reset (stages 1-4) carries no credit figure
            self.credit[index] = -(-answer.credit // self.credit_share)
            if answer.credit == 0:
                self._paused[index] = now + PAUSE_S
            else:
                self._paused.pop(index, None)

    async def _submit(self, index: int, u: int | None, frame: bytes) -> None:
        """One submit; ``u`` is the user whose pending frame this is (``None``: malformed)."""
        peer = self.peers.get(index)
        answer: SubmitAnswer | None = None
        try:
            if peer is None or peer.session.closed:
                raise TransportError("not connected")
            started = asyncio.get_running_loop().time()
            answer = await submit_tx(peer, frame)
            if answer.admitted and u is not None:
                self.admitted_at.setdefault(frame, started)
        except (TransportError, ZapError):
            answer = None
        finally:
            self._count(index, answer, asyncio.get_running_loop().time())
            if u is not None:
                self.settle(u, answer)
                self._busy.discard(u)

    def _target(self, targets: list[int], now: float) -> int | None:
        """The next validator to send to: not paused and with credit (round-robin)."""
        ready = []
        for i in targets:
            if self._paused.get(i, 0.0) > now:
                continue
            if self.credit.get(i, self._start_credit) <= 0:
                if i not in self._paused:
                    continue  # out of credit, answers still to come
                del self._paused[i]  # the pause is over: one probe
                self.credit[i] = 1
            ready.append(i)
        return ready[self.stats.sent % len(ready)] if ready else None

    def _idle_user(self) -> int | None:
        for _ in range(8):
            u = self.rng.randrange(len(self.users))
            if u not in self._busy:
                return u
        idle = [u for u in range(len(self.users)) if u not in self._busy]
        return self.rng.choice(idle) if idle else None

    def _start_one(self, targets: list[int], tasks: set[asyncio.Task[None]]) -> bool:
        index = self._target(targets, asyncio.get_running_loop().time())
        u = self._idle_user()
        if index is None or u is None:
            return False
        self.credit[index] = self.credit.get(index, self._start_credit) - 1
        self.stats.sent += 1
        bad = bool(self.malformed_every) and self.stats.sent % self.malformed_every == 0
        if bad:
            frame = self.rng.choice(_BAD_FRAMES)(self._next_tx(u)[1])
            self.stats.malformed += 1
            task = asyncio.create_task(self._submit(index, None, frame))
        else:
            self._busy.add(u)
            frame = self._next_tx(u)[1]
            self.sent_at.setdefault(frame, asyncio.get_running_loop().time())
            task = asyncio.create_task(self._submit(index, u, frame))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Submit until ``stop`` is set."""
        if self.endpoint is None:
            await self.connect()
        tick = 0.05
        per_tick = max(1, int(self.rate * tick))
        targets = sorted(self.peers)
        tasks: set[asyncio.Task[None]] = set()
        while not stop.is_set() and targets:
            for _ in range(per_tick):
                if not self._start_one(targets, tasks):
                    break
            await asyncio.sleep(tick)
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def close(self) -> None:
        if self.endpoint is not None:
            await asyncio.wait_for(self.endpoint.close(), 5)
