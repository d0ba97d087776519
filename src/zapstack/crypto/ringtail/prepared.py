"""The message-independent half of Ringtail's round 2, computed once per signer set.

Contract
--------
Once the signer set T and every round-1 commitment D_j (j in T) are known --
before the message exists -- everything round 2 and combine derive from them
alone can be computed: the decoded sum D = sum D_j, its NTT, the session
digest (key, session id, T, every commitment digest) and the spread check.
:func:`prepare` does that and returns a :class:`Prepared`; round 2 and
combine then add only the message-dependent work (u, h, c, z).

A :class:`Prepared` remembers the exact commitment bytes it was made from;
:meth:`Prepared.matches` is how a later call with (session, T, commitments)
knows it may reuse it -- any other input is recomputed, never trusted.
Malformed commitments raise :class:`~zapstack.errors.InvalidCert`; a
commitment set that is not exactly one per signer raises
:class:`~zapstack.errors.LocalProtocolError`.  Pure; thread-safe once built
(frozen, its arrays are never written).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail.codec import decode_mod_q, malformed
from zapstack.crypto.ringtail.keys import GroupPublicKey, expanded
from zapstack.crypto.ringtail.params import Params
from zapstack.crypto.ringtail.ring import DEGREE, addmod, center, ntt
from zapstack.crypto.ringtail.transcript import commitment_digest, session_digest, sid_digest
from zapstack.errors import LocalProtocolError

__all__ = ["HEAD", "Prepared", "prepare", "spread_ok"]

I64 = npt.NDArray[np.int64]
Blob = bytes | bytearray | memoryview
_INDEX: Final = struct.Struct(">H")
HEAD: Final = 2 + 32
"""u16 index || 32-byte digest: the head of every commitment and response."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """Round 2's message-independent inputs for one (session, signer set, commitments)."""

    session_id: bytes
    signers: tuple[int, ...]
    commitments: tuple[bytes, ...]
    """The commitment bytes, in signer order (what :meth:`matches` compares)."""
    digest: bytes
    """The session digest."""
    d_sum: I64
    d_hat: I64
    """NTT of D = sum D_j."""
    spread: bool
    """The spread check's verdict on D (round 2 refuses to answer when False)."""

    def matches(
        self, session_id: bytes, signers: tuple[int, ...], commitments: Mapping[int, Blob]
    ) -> bool:
        """True when (session_id, signers, commitments) are exactly what this was made from."""
        if session_id != self.session_id or signers != self.signers:
            return False
        if set(commitments) != set(signers):
            return False
        return all(
            bytes(commitments[j]) == c for j, c in zip(signers, self.commitments, strict=True)
        )


def _decode_commitment(blob: memoryview, index: int, sid_dig: bytes, p: Params) -> I64:
    cols = p.dbar + 1
    if len(blob) != HEAD + 7 * p.rows * cols * DEGREE:
        raise malformed(f"commitment of party {index} has the wrong length")
    if _INDEX.unpack_from(blob)[0] != index:
        raise malformed(f"commitment filed under {index} names another party")
    if bytes(blob[2:HEAD]) != sid_dig:
        raise malformed(f"commitment of party {index} belongs to another session")
    return decode_mod_q(blob[HEAD:], p.rows * cols * DEGREE).reshape(p.rows, cols, DEGREE)


def prepare(
    pk: GroupPublicKey,
    session_id: bytes,
    signers: tuple[int, ...],
    commitments: Mapping[int, Blob],
) -> Prepared:
    """Decode and sum the commitments of ``signers`` (ascending); digest; spread check."""
    p = pk.params
    if set(commitments) != set(signers):
        raise LocalProtocolError("need exactly one commitment per signer")
    exp = expanded(pk)
    sid_dig = sid_digest(session_id)
    d_sum = np.zeros((p.rows, p.dbar + 1, DEGREE), dtype=np.int64)
    d_digests = []
    kept = []
    for j in signers:
        blob = memoryview(commitments[j])
        d_sum = addmod(d_sum, _decode_commitment(blob, j, sid_dig, p))
        d_digests.append(commitment_digest(blob[HEAD:]))
        kept.append(bytes(blob))
    digest = session_digest(exp.digest, sid_dig, signers, d_digests)
    return Prepared(
        session_id, signers, tuple(kept), digest, d_sum, ntt(d_sum), spread_ok(d_sum, p)
    )


def spread_ok(d_sum: I64, p: Params) -> bool:
    """Well-spreadness of columns 1..dbar of D (round-2 guard).

    In every one of the 256 complex embeddings X -> exp(i*pi*(2k+1)/256) the
    rows x dbar matrix must have smallest singular value s with
    s / 256 > eta_epsilon * q / sigma_u (the threshold of the authors'
    prototype).  A uniformly random D passes with an enormous margin.
    """
    bar = center(d_sum[:, 1:, :]).astype(np.float64)
    twist = np.exp(1j * np.pi * np.arange(DEGREE) / DEGREE)
    slots = np.fft.fft(bar * twist, axis=-1)  # (rows, dbar, 256)
    # Gram matrices per slot, (256, rows, rows); einsum keeps this off the BLAS
    # thread pool, which oversubscribes the cores when signers run in processes.
    gram = np.einsum("ikj,lkj->jil", slots, np.conj(slots))
    smallest = float(np.sqrt(max(float(np.linalg.eigvalsh(gram).min()), 0.0)))
    return smallest / DEGREE > p.eta_epsilon * p.q / p.sigma_u
