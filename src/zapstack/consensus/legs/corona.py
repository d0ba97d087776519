"""Corona leg: a two-round Ringtail threshold lattice signature (t-of-n, Shamir).

Built on :mod:`zapstack.crypto.ringtail` (Boschini et al., S&P 2025).  Per epoch
a dealer Shamir-shares one Ringtail key t-of-n, ``t = floor(2n/3) + 1`` by
count, one share per validator (Shamir index = validator index + 1); the group
public key is part of the validator set (and of its root).

One signing session per (chain, height, round, validator set):

1. round 1 (message independent): each validator commits with nonces derived
   from ``HMAC-SHA256(nonce_seed, session_id || entropy)`` -- bound to the
   session, never to the key share alone; a running node passes fresh random
   ``entropy`` so a restarted node never re-derives a nonce it may have used.
   Because nothing of the block enters round 1, a validator prepares it
   *ahead* for upcoming sessions (:class:`Presessions`) and sends the
   commitment to that session's aggregator before the proposal exists;
2. the aggregator fixes the signer set (the first t committers in validator
   order, preprocessed ones when it holds t) and sends it with their
   commitments;
3. round 2: each chosen signer answers once with its response over the Corona
   leg digest -- a :class:`CoronaSigner` refuses a second round 2 (a reused
   nonce with two messages would leak the share);
4. the aggregator combines the responses into one ~15.7 KB signature.

Field = the Ringtail signature bytes.  Present = it verifies under the set's
group key over the Corona digest; a valid signature implies t shares took part.
The field carries no bitmap: Ringtail does not bind the signer set.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from zapstack.consensus.digest import CertContext, LegId, corona_session_id, leg_digest
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet
from zapstack.crypto import ringtail
from zapstack.errors import InvalidCert, LocalProtocolError

__all__ = [
    "CoronaSigner",
    "Presessions",
    "aggregate",
    "choose_signers",
    "deal_epoch",
    "prepare_session",
    "session_of",
    "verify",
]

LEG = LegId.CORONA
_L = LEG.label


def deal_epoch(n: int, t: int, seed: bytes) -> tuple[bytes, list[ringtail.KeyShare]]:
    """Deal one epoch's key: (group public key bytes, shares in validator order)."""
    pk, shares = ringtail.deal(n, t, seed)
    ordered = sorted(shares, key=lambda s: s.index)
    return pk.to_bytes(), ordered


def session_of(ctx: CertContext) -> bytes:
    """The Ringtail session id for ``ctx`` (independent of the block)."""
    return corona_session_id(ctx.chain_id, ctx.height, ctx.round, ctx.vset_root)


class CoronaSigner:
    """One validator's side of one Corona session: commit, then respond at most once."""

    __slots__ = ("_responded", "_state", "commitment", "index", "session_id")

    def __init__(self, secrets: ValidatorSecrets, session_id: bytes, entropy: bytes = b"") -> None:
        if secrets.corona_share is None:
            raise LocalProtocolError(f"validator {secrets.index} holds no Corona key share")
        share = secrets.corona_share
        if not isinstance(share, ringtail.KeyShare):
            raise LocalProtocolError("corona_share is not a ringtail.KeyShare")
        rng_seed = hmac.new(secrets.nonce_seed, session_id + entropy, hashlib.sha256).digest()
        state, commitment = ringtail.round1(share, session_id, rng_seed)
        self.index = secrets.index
        """Validator index (0-based)."""
        self.session_id = session_id
        self.commitment: bytes = commitment
        """Round-1 commitment to broadcast."""
        self._state: ringtail.SignerSession | None = state
        self._responded = False

    @property
    def open(self) -> bool:
        """True until round 2 answered or the session was discarded."""
        return self._state is not None

    def respond(
        self, ctx: CertContext, signers: Sequence[int], commitments: Mapping[int, bytes]
    ) -> bytes:
        """Round-2 response over the Corona digest of ``ctx`` (validator indices)."""
        if self._state is None:
            why = "already answered round 2" if self._responded else "was discarded"
            raise LocalProtocolError(f"Corona signer {self.index}: session {why}")
        if session_of(ctx) != self.session_id:
            raise LocalProtocolError("Corona round 2 for a different session than round 1")
        if self.index not in signers:
            raise LocalProtocolError(f"validator {self.index} is not in the chosen signer set")
        state, self._state = self._state, None
        self._responded = True
        return ringtail.round2(
            state,
            leg_digest(ctx, LEG),
            [i + 1 for i in signers],
            {i + 1: c for i, c in commitments.items()},
        )

    def prime(self, signers: Sequence[int], commitments: Mapping[int, bytes]) -> None:
        """Compute round 2's message-independent half now that the signer set is known.

        Public data only (decoded commitments, their sum, the session digest,
        the spread check); :meth:`respond` reuses it for exactly these inputs.
        """
        state = self._state
        if state is not None:
            state.prime([i + 1 for i in signers], {i + 1: c for i, c in commitments.items()})

    def discard(self) -> None:
        """Drop the session's secret state (idempotent)."""
        if self._state is not None:
            self._state.discard()
        self._state = None


Key = tuple[int, int]
"""(height, round) of one Corona session."""


class Presessions:
    """One validator's round-1 sessions prepared ahead of their proposals.

    Keys are (height, round); only round 0 of the next ``lookahead`` heights is
    prepared (:meth:`wanted`).  A key is reserved before its round 1 runs
    (:meth:`reserve`, so two concurrent preparers never both make it), filled
    at most once (:meth:`add` refuses anything else), handed out at most once
    (:meth:`take` pops it) and destroyed, nonces erased, when the chain passes
    it (:meth:`drop_before`: a commit or a round change).  A session never
    serves two keys: its id is bound to (chain, height, round, validator set).
    """

    __slots__ = ("_ready", "_reserved", "_taken", "lookahead")

    def __init__(self, lookahead: int = 2) -> None:
        if lookahead < 1:
            raise LocalProtocolError("Presessions needs a lookahead of at least one height")
        self.lookahead = lookahead
        self._ready: dict[Key, CoronaSigner] = {}
        self._reserved: set[Key] = set()
        self._taken: set[Key] = set()

    def wanted(self, height: int) -> list[Key]:
        """Keys to prepare next, nearest first: round 0 of height .. height+lookahead-1."""
        keys = [(h, 0) for h in range(height, height + self.lookahead)]
        return [k for k in keys if k not in self._reserved and k not in self._taken]

    def reserve(self, key: Key) -> bool:
        """Claim ``key`` for one round 1; False if it was claimed before."""
        if key in self._reserved:
            return False
        self._reserved.add(key)
        return True

    def add(self, key: Key, signer: CoronaSigner) -> None:
        """Keep ``signer`` for reserved ``key``; anything else is refused (and discarded)."""
        if key not in self._reserved or key in self._ready or key in self._taken:
            signer.discard()
            raise LocalProtocolError(f"Corona session {key} is not reserved or was prepared")
        self._ready[key] = signer

    def commitment(self, key: Key) -> bytes | None:
        """The prepared commitment for ``key`` (None: none ready)."""
        signer = self._ready.get(key)
        return None if signer is None else signer.commitment

    def peek(self, key: Key) -> CoronaSigner | None:
        """The prepared session for ``key`` without handing it out (to prime it)."""
        return self._ready.get(key)

    def take(self, key: Key) -> CoronaSigner | None:
        """Hand out the prepared session for ``key`` once (None: none ready).

        Either way ``key`` is spent: a round 1 for it still in flight is
        refused by :meth:`add` when it lands (the caller signs with a fresh
        session instead, whose commitment is the only one it sends).
        """
        self._taken.add(key)
        return self._ready.pop(key, None)

    def drop_before(self, height: int, round_: int = 0) -> int:
        """Destroy every prepared session for a key before (height, round_); count them."""
        gone = [k for k in self._ready if k < (height, round_)]
        for k in gone:
            self._ready.pop(k).discard()
        self._reserved = {k for k in self._reserved if k[0] >= height}
        self._taken = {k for k in self._taken if k[0] >= height}
        return len(gone)

    def __len__(self) -> int:
        return len(self._ready)


def choose_signers(vset: ValidatorSet, committed: Sequence[int]) -> list[int] | None:
    """The first t committers in validator order, or None while fewer than t."""
    chosen = sorted(set(committed))[: vset.corona_threshold]
    return chosen if len(chosen) == vset.corona_threshold else None


_PREPARED: OrderedDict[bytes, ringtail.Prepared] = OrderedDict()
_PREPARED_LOCK = threading.Lock()
PREPARED_KEEP = 8
"""Sessions whose combine half is kept ready (a cache of public data, per process)."""


def prepare_session(
    vset: ValidatorSet, session_id: bytes, signers: Sequence[int], commitments: Mapping[int, bytes]
) -> None:
    """Aggregator: compute combine's message-independent half ahead of the responses.

    Kept for the last :data:`PREPARED_KEEP` sessions; :func:`aggregate` uses it
    only when session, signer set and every commitment byte match.
    """
    pk = ringtail.GroupPublicKey.from_bytes(vset.corona_pk)
    ordered = tuple(sorted(i + 1 for i in signers))
    prep = ringtail.prepare(pk, session_id, ordered, {i + 1: c for i, c in commitments.items()})
    with _PREPARED_LOCK:
        _PREPARED[session_id] = prep
        while len(_PREPARED) > PREPARED_KEEP:
            _PREPARED.popitem(last=False)


def aggregate(
    vset: ValidatorSet,
    ctx: CertContext,
    signers: Sequence[int],
    commitments: Mapping[int, bytes],
    responses: Mapping[int, bytes],
) -> bytes:
    """Combine the chosen signers' responses; :class:`InvalidCert` if it fails to verify."""
    if not vset.corona_pk:
        raise InvalidCert("corona: the validator set has no Corona group key", leg=_L)
    if len(set(signers)) < vset.corona_threshold:
        raise InvalidCert(
            f"corona: {len(set(signers))} signers below threshold {vset.corona_threshold}",
            leg=_L,
        )
    missing = [i for i in signers if i not in responses or i not in commitments]
    if missing:
        raise InvalidCert(f"corona: no commitment/response from signers {missing}", leg=_L)
    pk = ringtail.GroupPublicKey.from_bytes(vset.corona_pk)
    message = leg_digest(ctx, LEG)
    with _PREPARED_LOCK:
        prepared = _PREPARED.get(session_of(ctx))
    try:
        sig = ringtail.combine(
            pk,
            message,
            session_of(ctx),
            [i + 1 for i in signers],
            {i + 1: commitments[i] for i in signers},
            {i + 1: responses[i] for i in signers},
            prepared,
        )
    except Exception as exc:  # a bad response from a signer: the leg fails, never a crash
        raise InvalidCert(f"corona: combine failed: {exc}", leg=_L) from exc
    if not ringtail.verify(pk, message, sig):
        raise InvalidCert("corona: combined signature does not verify (bad response)", leg=_L)
    return bytes(sig)


def verify(vset: ValidatorSet, ctx: CertContext, field: bytes) -> list[int]:
    """Check a non-empty Corona field; returns [] (Ringtail names no signers)."""
    if not vset.corona_pk:
        raise InvalidCert("corona: the validator set has no Corona group key", leg=_L)
    try:
        pk = ringtail.GroupPublicKey.from_bytes(vset.corona_pk)
        ok = ringtail.verify(pk, leg_digest(ctx, LEG), field)
    except Exception as exc:  # a malformed field is the sender's fault, never a crash
        raise InvalidCert(f"corona: malformed signature: {exc}", leg=_L) from exc
    if not ok:
        raise InvalidCert("corona: signature does not verify over this cert's transcript", leg=_L)
    return []
