"""Validator sets: weights, leg key material, admission by proof of possession, root.

Contract
--------
* A :class:`ValidatorSet` is immutable.  :meth:`ValidatorSet.create` admits a
  BLS key only together with a valid proof of possession (rogue-key defence for
  FastAggregateVerify) and rejects zero weights, duplicate keys and wrong key
  sizes with :class:`ConfigError`.
* Key material per leg is optional per validator (empty bytes = not
  registered); CertPolicy rule 4 checks that the legs a chain's mode needs are
  keyed for every validator.
* Thresholds: ``threshold_weight = floor(2 W / 3) + 1`` over the total weight W
  (BLS, Pulsar, Magnetar).  Corona (Ringtail) is Shamir t-of-n *by count*:
  ``corona_threshold = floor(2 n / 3) + 1`` shares, one per validator, dealt per
  epoch; equal to the weight rule when weights are equal.
* ``root`` pins the whole set (``docs/formats/quasarcert.md`` §Validator-set root).
* Bitmaps: ``ceil(n/8)`` bytes, validator i at byte ``i >> 3``, mask
  ``0x80 >> (i & 7)``; padding bits must be zero.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from zapstack.crypto import bls, mldsa, slhdsa
from zapstack.crypto.slhdsa import PARAMS, ParamSet
from zapstack.errors import ConfigError, InvalidCert
from zapstack.zap.merkle import leaf_hash, root_of_leaf_hashes

__all__ = [
    "Validator",
    "ValidatorSecrets",
    "ValidatorSet",
    "decode_bitmap",
    "encode_bitmap",
    "generate_validators",
    "threshold_of",
]

_ROOT_DOMAIN = b"zapstack/vset/v1\x00"
MAX_VALIDATORS = 4096
"""Upper bound on a set's size (bitmaps stay <= 512 bytes)."""


def threshold_of(total: int) -> int:
    """``floor(2 * total / 3) + 1``: the smallest weight (or count) that is > 2/3."""
    return (2 * total) // 3 + 1


@dataclass(frozen=True, slots=True)
class Validator:
    """One validator's public record."""

    index: int
    """Position in the set, 0-based; the bitmap bit and (index + 1) the Shamir index."""
    weight: int
    """Voting weight, >= 1."""
    bls_pk: bytes = b""
    """48-byte BLS12-381 G1 key, or empty when not registered."""
    bls_pop: bytes = b""
    """96-byte proof of possession of ``bls_pk`` (required with it)."""
    mldsa_pk: bytes = b""
    """1952-byte ML-DSA-65 key, or empty."""
    slhdsa_pk: bytes = b""
    """SLH-DSA key of the set's parameter set, or empty."""

    def record(self, params: ParamSet) -> bytes:
        """The canonical leaf bytes of this validator (see the format doc)."""
        out = bytearray(struct.pack(">IQ", self.index, self.weight))
        for key in (self.bls_pk, self.mldsa_pk):
            out += struct.pack(">H", len(key)) + key
        out += struct.pack(">BH", int(params), len(self.slhdsa_pk)) + self.slhdsa_pk
        return bytes(out)


@dataclass(frozen=True, slots=True)
class ValidatorSecrets:
    """One validator's private material (never leaves the validator)."""

    index: int
    bls_sk: bytes
    mldsa_sk: bytes
    slhdsa_sk: bytes
    corona_share: object | None
    """The epoch's Ringtail ``KeyShare`` (Shamir index = index + 1), or None."""
    nonce_seed: bytes
    """32 secret bytes from which per-session Ringtail randomness is derived."""


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """An admitted, immutable validator set.  Build with :meth:`create`."""

    validators: tuple[Validator, ...]
    slh_params: ParamSet
    """Parameter set of every ``slhdsa_pk`` (chosen by the chain's CertPolicy)."""
    corona_pk: bytes = b""
    """``GroupPublicKey.to_bytes()`` of this epoch's Ringtail key, or empty."""
    total_weight: int = field(init=False)
    threshold_weight: int = field(init=False)
    corona_threshold: int = field(init=False)
    root: bytes = field(init=False)

    @classmethod
    def create(
        cls,
        validators: Sequence[Validator],
        slh_params: ParamSet,
        corona_pk: bytes = b"",
    ) -> ValidatorSet:
        """Admit ``validators``; raise :class:`ConfigError` naming the first problem."""
        if not 1 <= len(validators) <= MAX_VALIDATORS:
            raise ConfigError(f"a validator set needs 1..{MAX_VALIDATORS} validators")
        sizes = PARAMS[slh_params]
        seen: set[bytes] = set()
        for i, v in enumerate(validators):
            who = f"validator {i}"
            if v.index != i:
                raise ConfigError(f"{who}: index {v.index} out of order (expected {i})")
            if v.weight < 1 or v.weight > (1 << 48):
                raise ConfigError(f"{who}: weight {v.weight} outside 1..2^48")
            if v.bls_pk or v.bls_pop:
                if len(v.bls_pk) != bls.PUBLIC_KEY_SIZE:
                    raise ConfigError(f"{who}: BLS key must be {bls.PUBLIC_KEY_SIZE} bytes")
                if not bls.pop_verify(v.bls_pk, v.bls_pop):
                    raise ConfigError(f"{who}: BLS key rejected, proof of possession invalid")
            if v.mldsa_pk and len(v.mldsa_pk) != mldsa.PUBLIC_KEY_SIZE:
                raise ConfigError(f"{who}: ML-DSA-65 key must be {mldsa.PUBLIC_KEY_SIZE} bytes")
            if v.slhdsa_pk and len(v.slhdsa_pk) != sizes.public_key_size:
                raise ConfigError(f"{who}: {sizes.name} key must be {sizes.public_key_size} bytes")
            for key in (v.bls_pk, v.mldsa_pk, v.slhdsa_pk):
                if key and key in seen:
                    raise ConfigError(f"{who}: duplicate public key")
                seen.add(key)
        return cls(tuple(validators), slh_params, corona_pk)

    def __post_init__(self) -> None:
        total = sum(v.weight for v in self.validators)
        object.__setattr__(self, "total_weight", total)
        object.__setattr__(self, "threshold_weight", threshold_of(total))
        object.__setattr__(self, "corona_threshold", threshold_of(len(self.validators)))
        leaves = [leaf_hash(v.record(self.slh_params)) for v in self.validators]
        corona = hashlib.sha256(self.corona_pk).digest() if self.corona_pk else bytes(32)
        root = hashlib.sha256(
            _ROOT_DOMAIN
            + struct.pack(">I", len(self.validators))
            + root_of_leaf_hashes(leaves)
            + corona
        ).digest()
        object.__setattr__(self, "root", root)

    @property
    def n(self) -> int:
        """Number of validators."""
        return len(self.validators)

    @property
    def bitmap_len(self) -> int:
        """Bytes in a signer bitmap for this set."""
        return (self.n + 7) // 8

    def weight_of(self, indices: Iterable[int]) -> int:
        """Total weight of distinct ``indices``."""
        return sum(self.validators[i].weight for i in set(indices))


def encode_bitmap(n: int, indices: Iterable[int]) -> bytes:
    """The signer bitmap of ``indices`` in a set of ``n``."""
    out = bytearray((n + 7) // 8)
    for i in indices:
        if not 0 <= i < n:
            raise InvalidCert(f"signer index {i} is not a member of a set of {n}")
        out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def decode_bitmap(n: int, bitmap: bytes, *, leg: str = "") -> list[int]:
    """Ascending signer indices; :class:`InvalidCert` on a bad length or a non-member bit."""
    if len(bitmap) != (n + 7) // 8:
        raise InvalidCert(
            f"{leg} bitmap is {len(bitmap)} bytes, a set of {n} needs {(n + 7) // 8}", leg=leg
        )
    out: list[int] = []
    for byte_i, byte in enumerate(bitmap):
        for bit in range(8):
            if byte & (0x80 >> bit):
                i = byte_i * 8 + bit
                if i >= n:
                    raise InvalidCert(
                        f"{leg} bitmap names validator {i}, not a member of a set of {n}", leg=leg
                    )
                out.append(i)
    return out


def _seed(master: bytes, label: str, index: int) -> bytes:
    return hashlib.sha256(master + label.encode() + struct.pack(">I", index)).digest()


def generate_validators(
    n: int,
    seed: bytes,
    *,
    slh_params: ParamSet = ParamSet.SHA2_128F,
    weights: Sequence[int] | None = None,
    corona: bool = True,
    legs_keyed: frozenset[str] = frozenset({"bls", "pulsar", "magnetar"}),
) -> tuple[ValidatorSet, list[ValidatorSecrets]]:
    """A deterministic devnet/test validator set and its secrets, from ``seed``.

    ``corona`` deals this epoch's Ringtail shares (t = floor(2n/3)+1) with a
    trusted dealer seeded from ``seed``; ``legs_keyed`` chooses which of the
    other legs get keys (rule-4 tests leave some out).
    """
    weights = list(weights) if weights is not None else [1] * n
    if len(weights) != n:
        raise ConfigError("weights must have one entry per validator")
    shares: list[object | None] = [None] * n
    corona_pk = b""
    if corona:
        from zapstack.consensus.legs import corona as corona_leg

        corona_pk, dealt = corona_leg.deal_epoch(n, threshold_of(n), _seed(seed, "corona", 0))
        shares = list(dealt)
    validators: list[Validator] = []
    secrets: list[ValidatorSecrets] = []
    for i in range(n):
        bls_sk, bls_pk = bls.keygen(_seed(seed, "bls", i))
        ml_sk, ml_pk = mldsa.keygen(_seed(seed, "mldsa", i))
        slh_sk, slh_pk = (
            slhdsa.keygen(_seed(seed, "slhdsa", i), slh_params)
            if "magnetar" in legs_keyed
            else (b"", b"")
        )
        has_bls = "bls" in legs_keyed
        validators.append(
            Validator(
                index=i,
                weight=weights[i],
                bls_pk=bls_pk if has_bls else b"",
                bls_pop=bls.pop_prove(bls_sk) if has_bls else b"",
                mldsa_pk=ml_pk if "pulsar" in legs_keyed else b"",
                slhdsa_pk=slh_pk,
            )
        )
        secrets.append(
            ValidatorSecrets(i, bls_sk, ml_sk, slh_sk, shares[i], _seed(seed, "nonce", i))
        )
    return ValidatorSet.create(validators, slh_params, corona_pk), secrets
