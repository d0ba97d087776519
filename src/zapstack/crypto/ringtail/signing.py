"""Ringtail's two-round threshold signing: round 1, round 2, combine.

Theory of operation
-------------------
Round 1 (message-independent, may be precomputed).  Party i draws from
SHAKE256(nonce key, i, session id, rng seed) a short matrix R_i = [r* | R]
in R^{cols x (dbar+1)} and E_i = [e* | E] in R^{rows x (dbar+1)} (first
columns sigma*, the rest sigma_e) and broadcasts D_i = A R_i + E_i.  The
randomness is bound to the session id and a caller-supplied seed, never to
the key share alone.

Round 2 (message mu, signer set T, all D_j).  Everyone derives the same
session digest (pk, session, T, every D_j), u = (1, H_u(digest, mu)),
D = sum D_j, h = round_nu(D u), c~ = H_c(pk, h, mu), c = challenge(c~), and
party i reveals  z_i = R_i u + lambda_i c s_i + m_i  where lambda_i is its
Lagrange coefficient for T and m_i = sum_{j in T, j != i} +-PRF(k_ij; digest,
mu) (plus when i < j): the masks cancel in sum_i z_i.  Before answering,
the party checks that the columns 1..dbar of D are well spread (the
paper's guard against a rushing adversary that makes D degenerate).

Combine.  z = sum z_i = R u + c s with R = sum R_i, so
A z - c b = D u - E u - c e - c*(rounding of b): small.  The combiner sets
Delta = h - round_nu(A z - c 2^xi b~) and outputs (c~, z, Delta).

A :class:`SignerSession` answers round 2 at most once: a second call (nonce
reuse) raises :class:`LocalProtocolError`; :meth:`SignerSession.discard`
erases the nonces and is idempotent.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail.codec import (
    decode_mod_q,
    encode_mod_q,
    malformed,
    pack_bits,
    round_bits,
)
from zapstack.crypto.ringtail.keys import GroupPublicKey, KeyShare, expanded
from zapstack.crypto.ringtail.prepared import Prepared, prepare, spread_ok
from zapstack.crypto.ringtail.ring import (
    DEGREE,
    Q,
    addmod,
    center,
    intt,
    matmul_ntt,
    matvec_ntt,
    mulmod,
    ntt,
    submod,
)
from zapstack.crypto.ringtail.sampling import challenge, gaussian, gaussian_bytes
from zapstack.crypto.ringtail.shamir import lagrange_at_zero
from zapstack.crypto.ringtail.transcript import (
    hash_c,
    hash_u,
    mask_prf,
    nonce_xof,
    sid_digest,
)
from zapstack.crypto.ringtail.verify import Signature, norm_sq, recompute_h
from zapstack.errors import InvalidCert, LocalProtocolError

__all__ = [
    "SignerSession",
    "combine",
    "combine_unchecked",
    "prepare",
    "round1",
    "round2",
    "sign_in_process",
    "spread_ok",
]

I64 = npt.NDArray[np.int64]
Blob = bytes | bytearray | memoryview
"""Encoded protocol messages may be passed as any bytes-like buffer (read in place)."""
_INDEX: Final = struct.Struct(">H")
_HEAD: Final = 2 + 32  # u16 index || 32-byte digest
_Z_LIMIT: Final = 1 << 47


class SignerSession:
    """One party's private state between round 1 and round 2 (single use)."""

    __slots__ = ("_r_hat", "_used", "commitment", "prepared", "session_id", "share")

    def __init__(self, share: KeyShare, session_id: bytes, r_hat: I64, commitment: bytes) -> None:
        self.share = share
        """The key share that signs."""
        self.session_id = session_id
        """The session this state belongs to."""
        self.commitment = commitment
        """This party's encoded round-1 message."""
        self._r_hat = r_hat
        self._used = False
        self.prepared: Prepared | None = None
        """Round 2's message-independent half, when :meth:`prime` ran (public data only)."""

    @property
    def used(self) -> bool:
        """True once round 2 answered or the session was discarded."""
        return self._used

    def prime(self, signers: Sequence[int], commitments: Mapping[int, Blob]) -> Prepared:
        """Compute round 2's message-independent half now (the signer set is known).

        Touches no secret: round 2 reuses it only for exactly these inputs.
        """
        ordered = _check_signers(signers, self.share.n)
        self.prepared = prepare(self.share.public_key, self.session_id, ordered, commitments)
        return self.prepared

    def discard(self) -> None:
        """Erase the nonces; safe to call any number of times, in any state."""
        self._r_hat = np.zeros((0,), dtype=np.int64)
        self._used = True

    def _take_nonces(self) -> I64:
        if self._used:
            raise LocalProtocolError("ringtail: round 2 already ran for this session (nonce reuse)")
        return self._r_hat


def round1(share: KeyShare, session_id: bytes, rng_seed: bytes) -> tuple[SignerSession, bytes]:
    """Sample R_i, E_i and return (private state, commitment bytes).

    Commitment: u16 index || sid digest (32) || D_i (rows*(dbar+1)*256 values, 7 bytes each).
    """
    if len(rng_seed) < 32:
        raise LocalProtocolError("ringtail round 1 needs a rng seed of at least 32 bytes")
    pk = share.public_key
    p = pk.params
    xof = nonce_xof(share.nonce_key, share.index, session_id, rng_seed)
    counts = (p.cols, p.rows, p.cols * p.dbar, p.rows * p.dbar)
    xof.reserve(sum(gaussian_bytes(c * DEGREE) for c in counts))  # one squeeze, ~2 MB
    r_star = gaussian(xof, p.sigma_star, p.cols * DEGREE, p.tail).reshape(p.cols, 1, DEGREE)
    e_star = gaussian(xof, p.sigma_star, p.rows * DEGREE, p.tail).reshape(p.rows, 1, DEGREE)
    r_rest = gaussian(xof, p.sigma_e, p.cols * p.dbar * DEGREE, p.tail)
    e_rest = gaussian(xof, p.sigma_e, p.rows * p.dbar * DEGREE, p.tail)
    r = np.concatenate([r_star, r_rest.reshape(p.cols, p.dbar, DEGREE)], axis=1) % Q
    e = np.concatenate([e_star, e_rest.reshape(p.rows, p.dbar, DEGREE)], axis=1) % Q
    r_hat = ntt(r)
    d = addmod(intt(matmul_ntt(expanded(pk).a_hat, r_hat)), e)
    commitment = _INDEX.pack(share.index) + sid_digest(session_id) + encode_mod_q(d)
    return SignerSession(share, session_id, r_hat, commitment), commitment


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything round 2 and combine derive identically from public data."""

    prep: Prepared
    u_hat: I64
    h: I64
    c_tilde: bytes
    c_hat: I64

    @property
    def digest(self) -> bytes:
        return self.prep.digest


def _check_signers(signers: Sequence[int], n: int | None = None) -> tuple[int, ...]:
    ordered = tuple(sorted(signers))
    if not ordered or len(set(ordered)) != len(ordered) or ordered[0] < 1:
        raise LocalProtocolError("signers must be distinct party indices >= 1")
    if n is not None and ordered[-1] > n:
        raise LocalProtocolError(f"signer index {ordered[-1]} exceeds n={n}")
    if ordered[-1] > 0xFFFF:
        raise LocalProtocolError("signer index exceeds 65535")
    return ordered


def _context(
    pk: GroupPublicKey,
    message: bytes,
    session_id: bytes,
    signers: tuple[int, ...],
    commitments: Mapping[int, Blob],
    prepared: Prepared | None = None,
) -> _Context:
    """The message-dependent half; the rest from ``prepared`` when it matches exactly."""
    p = pk.params
    if prepared is None or not prepared.matches(session_id, signers, commitments):
        prepared = prepare(pk, session_id, signers, commitments)
    u_hat = ntt(hash_u(prepared.digest, message, p))
    h = round_bits(intt(matvec_ntt(prepared.d_hat, u_hat)), p.nu)
    c_tilde = hash_c(expanded(pk).digest, pack_bits(h, p.log_q_nu), message)
    c_hat = ntt(challenge(c_tilde, p.kappa) % Q)
    return _Context(prepared, u_hat, h, c_tilde, c_hat)


def _mask(share: KeyShare, signers: tuple[int, ...], digest: bytes, message: bytes) -> I64:
    p = share.public_key.params
    mask = np.zeros((p.cols, DEGREE), dtype=np.int64)
    for j in signers:
        if j == share.index:
            continue
        prf = mask_prf(share.pair_key(j), digest, message, p)
        mask = addmod(mask, prf) if share.index < j else submod(mask, prf)
    return mask


def round2(
    state: SignerSession,
    message: bytes,
    signers: Sequence[int],
    commitments: Mapping[int, Blob],
) -> bytes:
    """Party i's response: u16 index || session digest (32) || z_i (cols*256 x 7 bytes)."""
    share = state.share
    r_hat = state._take_nonces()
    ordered = _check_signers(signers, share.n)
    if share.index not in ordered:
        raise LocalProtocolError(f"party {share.index} is not in the signer set")
    if len(ordered) < share.t:
        raise LocalProtocolError(f"{len(ordered)} signers is below the threshold {share.t}")
    if bytes(commitments.get(share.index, b"")) != state.commitment:
        raise LocalProtocolError("the commitment set does not hold this party's own commitment")
    return _respond(state, r_hat, bytes(message), ordered, commitments)


def _respond(
    state: SignerSession,
    r_hat: I64,
    message: bytes,
    signers: tuple[int, ...],
    commitments: Mapping[int, Blob],
) -> bytes:
    """Round-2 arithmetic (no threshold policy): used by round2 and by tests."""
    share = state.share
    ctx = _context(
        share.public_key, message, state.session_id, signers, commitments, state.prepared
    )
    if not ctx.prep.spread:
        raise InvalidCert("ringtail: combined commitment is degenerate", leg="corona")
    lam = lagrange_at_zero(share.index, signers)
    s_hat = ntt(share.secret_vector())
    z_hat = addmod(
        matvec_ntt(r_hat, ctx.u_hat),
        mulmod(mulmod(s_hat, ctx.c_hat[np.newaxis, :]), lam),
    )
    z = addmod(intt(z_hat), _mask(share, signers, ctx.digest, message))
    state.discard()  # the nonces are spent the moment z_i exists
    return _INDEX.pack(share.index) + ctx.digest + encode_mod_q(z)


def combine_unchecked(
    pk: GroupPublicKey,
    message: bytes,
    session_id: bytes,
    signers: Sequence[int],
    commitments: Mapping[int, Blob],
    responses: Mapping[int, Blob],
    prepared: Prepared | None = None,
) -> Signature:
    """Assemble (c~, z, Delta) without checking the bound (tests use it on bad inputs)."""
    p = pk.params
    ordered = _check_signers(signers)
    if set(responses) != set(ordered):
        raise LocalProtocolError("need exactly one response per signer")
    ctx = _context(pk, bytes(message), session_id, ordered, commitments, prepared)
    z = np.zeros((p.cols, DEGREE), dtype=np.int64)
    for j in ordered:
        blob = bytes(responses[j])
        if len(blob) != _HEAD + 7 * p.cols * DEGREE:
            raise malformed(f"response of party {j} has the wrong length")
        if _INDEX.unpack_from(blob)[0] != j or blob[2:_HEAD] != ctx.digest:
            raise malformed(f"response of party {j} is for another party or session")
        z = addmod(z, decode_mod_q(blob[_HEAD:], p.cols * DEGREE).reshape(p.cols, DEGREE))
    z_c = center(z)
    width = p.log_q_nu
    delta = (ctx.h - recompute_h(pk, ctx.c_tilde, z_c)) & ((1 << width) - 1)
    delta_c = np.where(delta >= 1 << (width - 1), delta - (1 << width), delta)
    return Signature(ctx.c_tilde, z_c, delta_c, p)


def combine(
    pk: GroupPublicKey,
    message: bytes,
    session_id: bytes,
    signers: Sequence[int],
    commitments: Mapping[int, Blob],
    responses: Mapping[int, Blob],
    prepared: Prepared | None = None,
) -> bytes:
    """Sum the responses into a signature; InvalidCert if it would not verify.

    ``prepared`` (from :func:`prepare` on the same inputs) skips the
    message-independent half; it is recomputed if it does not match exactly.
    """
    sig = combine_unchecked(pk, message, session_id, signers, commitments, responses, prepared)
    p = pk.params
    if int(np.abs(sig.z).max()) >= _Z_LIMIT or norm_sq(sig.z, sig.delta, p.nu) > p.bound_sq:
        raise InvalidCert(
            "ringtail: combined signature exceeds the norm bound "
            "(a wrong response, or fewer than t shares)",
            leg="corona",
        )
    return sig.to_bytes()


def sign_in_process(
    shares: Sequence[KeyShare],
    message: bytes,
    session_id: bytes,
    rng_seed: bytes,
) -> bytes:
    """Run both rounds for ``shares`` (the signer set) in this process and combine.

    Party i's round-1 rng seed is ``rng_seed || u16 i`` (its nonce key and
    the session id are mixed in by :func:`round1`).  A convenience for tests,
    benchmarks and single-process devnets.
    """
    if not shares:
        raise LocalProtocolError("no signers")
    signers = tuple(sorted(s.index for s in shares))
    states: dict[int, SignerSession] = {}
    commitments: dict[int, bytes] = {}
    for share in shares:
        states[share.index], commitments[share.index] = round1(
            share, session_id, rng_seed + _INDEX.pack(share.index)
        )
    responses = {i: round2(states[i], message, signers, commitments) for i in signers}
    return combine(shares[0].public_key, message, session_id, signers, commitments, responses)
