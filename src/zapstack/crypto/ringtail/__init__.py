"""Ringtail: two-round threshold signatures from LWE (the Corona certificate leg).

Boschini, Kaviani, Lai, Malavolta, Takahashi, Tibouchi, IEEE S&P 2025
(ePrint 2024/1113), over R_q = Z_q[X]/(X^256 + 1), q = 2^48 + 18945, in numpy.

Flow: :func:`deal` (trusted dealer, once per epoch, Shamir t-of-n) ->
:func:`round1` per signer (message-independent; commit D_i) ->
:func:`round2` per signer (response z_i, pairwise masks cancel) ->
:func:`combine` (anyone; outputs (c~, z, Delta), 15,648 bytes) ->
:func:`verify` (one matrix-vector product; never raises).

Concurrency: everything is a pure function of its inputs except
:class:`SignerSession`, which is single-use (round 2 at most once; a second
call raises LocalProtocolError) and must not be shared between threads.
Formats: ``docs/formats/ringtail.md``.
"""

from zapstack.crypto.ringtail.keys import GroupPublicKey, KeyShare, deal
from zapstack.crypto.ringtail.params import PARAMS, Params
from zapstack.crypto.ringtail.prepared import Prepared, prepare
from zapstack.crypto.ringtail.signing import (
    SignerSession,
    combine,
    combine_unchecked,
    round1,
    round2,
    sign_in_process,
)
from zapstack.crypto.ringtail.verify import Signature, verify, verify_signature

__all__ = [
    "PARAMS",
    "GroupPublicKey",
    "KeyShare",
    "Params",
    "Prepared",
    "Signature",
    "SignerSession",
    "combine",
    "combine_unchecked",
    "deal",
    "prepare",
    "round1",
    "round2",
    "sign_in_process",
    "verify",
    "verify_signature",
]
