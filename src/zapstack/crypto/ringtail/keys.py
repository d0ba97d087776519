"""Group public key, key shares, and the per-epoch trusted dealer.

Contract
--------
* :func:`deal` is deterministic in ``seed``: the dealer samples rho (the
  seed of A), short s and e (Gaussian sigma_e), publishes
  b~ = round_xi(A s + e), Shamir-shares s t-of-n over R_q
  (:mod:`.shamir`), and hands every party a 32-byte nonce key and one
  32-byte key per unordered pair {i, j} (the seeds of the pairwise masks).
  The dealer is trusted and forgets everything after the epoch's keys are
  distributed; a compromised dealer learns s.  This is the paper's
  "trusted dealer" key generation, run once per validator-set epoch.
* :class:`GroupPublicKey` is immutable; ``to_bytes``/``from_bytes`` are
  the format of ``docs/formats/ringtail.md``.  Expanded matrices are cached
  per encoded key (:func:`expanded`).
* :class:`KeyShare` holds secrets; its ``repr`` shows only public fields.
  Decoders raise :class:`InvalidCert` (leg "corona") on malformed bytes.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from zapstack.crypto.ringtail import shamir
from zapstack.crypto.ringtail.codec import (
    decode_mod_q,
    encode_mod_q,
    malformed,
    pack_bits,
    packed_len,
    round_bits,
    unpack_bits,
    unround_bits,
)
from zapstack.crypto.ringtail.params import PARAMS, Params
from zapstack.crypto.ringtail.ring import DEGREE, Q, addmod, intt, matvec_ntt, ntt
from zapstack.crypto.ringtail.sampling import Xof, gaussian
from zapstack.crypto.ringtail.transcript import expand_a, pk_digest
from zapstack.errors import LocalProtocolError

__all__ = ["Expanded", "GroupPublicKey", "KeyShare", "deal", "expanded"]

I64 = npt.NDArray[np.int64]
SHARE_VERSION: Final = 1
_SHARE_HEAD: Final = struct.Struct(">BHHH")  # version, index, n, t
KEY_BYTES: Final = 32
MAX_PARTIES: Final = 0xFFFF


@dataclass(frozen=True, slots=True)
class GroupPublicKey:
    """The group's verification key (rho, b~)."""

    rho: bytes
    """32-byte seed of the public matrix A."""
    b_tilde: bytes
    """b~ = round_xi(A s + e): rows*256 values of (48 - xi) bits, packed."""
    params: Params = PARAMS
    """The parameter set (not encoded; fixed by the chain)."""

    def to_bytes(self) -> bytes:
        """rho || packed b~."""
        return self.rho + self.b_tilde

    @classmethod
    def encoded_len(cls, params: Params = PARAMS) -> int:
        """Length of the encoding under ``params``."""
        return KEY_BYTES + packed_len(params.rows * DEGREE, params.log_q_xi)

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, params: Params = PARAMS
    ) -> GroupPublicKey:
        """Decode; raises InvalidCert on a wrong length or bad padding."""
        raw = bytes(data)
        if len(raw) != cls.encoded_len(params):
            raise malformed(f"public key is {len(raw)} bytes, expected {cls.encoded_len(params)}")
        unpack_bits(raw[KEY_BYTES:], params.rows * DEGREE, params.log_q_xi)  # validates padding
        return cls(raw[:KEY_BYTES], raw[KEY_BYTES:], params)


@dataclass(frozen=True, slots=True)
class Expanded:
    """Derived, cached values of one public key."""

    a_hat: I64
    """A in the NTT domain, (rows, cols, 256)."""
    b_hat: I64
    """2^xi * b~ in the NTT domain, (rows, 256)."""
    b_tilde: I64
    """b~ unpacked, (rows, 256)."""
    digest: bytes
    """32-byte pk digest bound into every hash."""


@functools.lru_cache(maxsize=16)
def expanded(pk: GroupPublicKey) -> Expanded:
    """Expand A and b~ once per key."""
    p = pk.params
    b_tilde = unpack_bits(pk.b_tilde, p.rows * DEGREE, p.log_q_xi).reshape(p.rows, DEGREE)
    return Expanded(
        a_hat=expand_a(pk.rho, p),
        b_hat=ntt(unround_bits(b_tilde, p.xi)),
        b_tilde=b_tilde,
        digest=pk_digest(pk.to_bytes()),
    )


@dataclass(frozen=True, slots=True)
class KeyShare:
    """One party's share of the epoch key."""

    index: int
    """Party index, 1..n (the Shamir evaluation point)."""
    n: int
    """Number of parties."""
    t: int
    """Threshold: any t parties can sign."""
    public_key: GroupPublicKey
    """The group public key."""
    secret: bytes = field(repr=False)
    """Shamir share s_i = f(i) of s: cols*256 values mod q, 7 bytes each."""
    nonce_key: bytes = field(repr=False)
    """32-byte key mixed into this party's round-1 randomness."""
    pair_keys: tuple[bytes, ...] = field(repr=False)
    """n 32-byte keys; entry j-1 is the key shared with party j (own entry zero)."""

    def secret_vector(self) -> I64:
        """s_i as an int64 (cols, 256) array."""
        p = self.public_key.params
        return decode_mod_q(self.secret, p.cols * DEGREE).reshape(p.cols, DEGREE)

    def pair_key(self, other: int) -> bytes:
        """The key shared with party ``other``."""
        if other == self.index or not 1 <= other <= self.n:
            raise LocalProtocolError(f"no pair key between {self.index} and {other}")
        return self.pair_keys[other - 1]

    def to_bytes(self) -> bytes:
        """version u8 | index u16 | n u16 | t u16 | pk | secret | nonce key | n pair keys."""
        head = _SHARE_HEAD.pack(SHARE_VERSION, self.index, self.n, self.t)
        return b"".join(
            (head, self.public_key.to_bytes(), self.secret, self.nonce_key, *self.pair_keys)
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, params: Params = PARAMS) -> KeyShare:
        """Decode; raises InvalidCert on any malformed field."""
        raw = bytes(data)
        if len(raw) < _SHARE_HEAD.size:
            raise malformed("key share truncated")
        version, index, n, t = _SHARE_HEAD.unpack_from(raw)
        if version != SHARE_VERSION or not 1 <= t <= n or not 1 <= index <= n:
            raise malformed(f"key share header (v{version}, i={index}, n={n}, t={t}) invalid")
        pk_len = GroupPublicKey.encoded_len(params)
        sec_len = 7 * params.cols * DEGREE
        if len(raw) != _SHARE_HEAD.size + pk_len + sec_len + KEY_BYTES * (1 + n):
            raise malformed("key share has the wrong length")
        at = _SHARE_HEAD.size
        pk = GroupPublicKey.from_bytes(raw[at : at + pk_len], params)
        at += pk_len
        secret = raw[at : at + sec_len]
        decode_mod_q(secret, params.cols * DEGREE)  # validates reduction
        at += sec_len
        nonce_key = raw[at : at + KEY_BYTES]
        at += KEY_BYTES
        pairs = tuple(raw[at + KEY_BYTES * k : at + KEY_BYTES * (k + 1)] for k in range(n))
        if pairs[index - 1] != bytes(KEY_BYTES):
            raise malformed("own pair-key slot must be zero")
        return cls(index, n, t, pk, secret, nonce_key, pairs)


def deal(
    n: int, t: int, seed: bytes, params: Params = PARAMS
) -> tuple[GroupPublicKey, list[KeyShare]]:
    """Trusted-dealer key generation for one epoch; shares are indexed 1..n.

    Stream order from SHAKE256(tag "deal" || seed): rho (32 bytes), s
    (cols*256 Gaussians), e (rows*256 Gaussians), the t-1 Shamir coefficient
    vectors, n nonce keys, then one key per pair (i, j), i < j, in
    lexicographic order.
    """
    params.check()
    if not 1 <= t <= n <= MAX_PARTIES:
        raise LocalProtocolError(f"need 1 <= t <= n <= {MAX_PARTIES}, got t={t}, n={n}")
    if len(seed) < KEY_BYTES:
        raise LocalProtocolError("dealer seed must be at least 32 bytes")
    p = params
    xof = Xof(b"zapstack/ringtail/v1/deal\x00" + seed)
    rho = xof.read(KEY_BYTES)
    s = gaussian(xof, p.sigma_e, p.cols * DEGREE, p.tail).reshape(p.cols, DEGREE) % Q
    e = gaussian(xof, p.sigma_e, p.rows * DEGREE, p.tail).reshape(p.rows, DEGREE) % Q
    a_hat = expand_a(rho, p)
    b = addmod(intt(matvec_ntt(a_hat, ntt(s))), e)
    b_tilde = round_bits(b, p.xi)
    pk = GroupPublicKey(rho, pack_bits(b_tilde, p.log_q_xi), p)
    shares = shamir.share(s, n, t, xof)
    nonce_keys = [xof.read(KEY_BYTES) for _ in range(n)]
    pair = [[bytes(KEY_BYTES)] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            pair[i][j] = pair[j][i] = xof.read(KEY_BYTES)
    out = [
        KeyShare(
            index=i + 1,
            n=n,
            t=t,
            public_key=pk,
            secret=encode_mod_q(shares[i]),
            nonce_key=nonce_keys[i],
            pair_keys=tuple(pair[i]),
        )
        for i in range(n)
    ]
    return pk, out
