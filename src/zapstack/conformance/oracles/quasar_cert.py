"""A readable model of QuasarCert decoding and verification.

Written from ``docs/formats/quasarcert.md`` (wire layout, digest, validator-set
root, bitmaps, thresholds, present/absent/invalid) and the modes table of
``docs/formats/certpolicy.md``; it imports nothing from
:mod:`zapstack.consensus`.  What is an independent model and what is not:

* **model** (our own code from the docs): the decoder, the leg digest, the
  validator records and ``vset_root`` (with the Merkle tree of zap.md
  §Merkle), bitmaps and their padding bits, field lengths, the weight
  threshold, the order of checks, the tier per mode;
* **BLS** signatures and proofs of possession: ``blspy`` (the only BLS12-381
  library here; the implementation uses it too, through ``crypto/bls.py``);
* **Pulsar** (ML-DSA-65): ``dilithium-py`` (pure Python; the implementation
  uses OpenSSL);
* **Magnetar** (SLH-DSA): the pure-Python ``slhdsa`` package (the
  implementation verifies with pqcrypto's C code);
* **Corona** (Ringtail): there is no second Ringtail implementation; the model
  calls :func:`zapstack.crypto.ringtail.verify` on the digest it computed.

:func:`expected` gives the verdict a line must carry (see
``docs/formats/vectors-quasar-cert.md``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

import slhdsa
from blspy import G1Element, G2Element, PopSchemeMPL
from slhdsa.lowlevel import parameters as slh_params

from zapstack.conformance.oracles import mldsa65

__all__ = ["LEGS", "MODES", "Malformed", "VSet", "decode", "expected", "leg_digest", "vset_root"]

LEGS = ("bls", "pulsar", "corona", "magnetar")
"""Leg names in id order (id = position + 1), which is also the field order."""
MAX_FIELD = 1 << 24
HEADER = 89

MODES: dict[str, tuple[str, frozenset[str]]] = {
    "PQ-off": ("hybrid", frozenset({"bls"})),
    "PQ-fast": ("hybrid", frozenset({"bls", "pulsar"})),
    "PQ-strict": ("hybrid", frozenset({"bls", "pulsar", "corona"})),
    "PQ-heavy": ("hybrid", frozenset({"bls", "pulsar", "corona", "magnetar"})),
    "strict-PQ-fast": ("pure-pq", frozenset({"pulsar"})),
    "strict-PQ-strict": ("pure-pq", frozenset({"pulsar", "corona"})),
    "strict-PQ-heavy": ("pure-pq", frozenset({"pulsar", "corona", "magnetar"})),
}
"""certpolicy.md §Modes: mode -> (variant, legs required)."""

SLH = {
    "slh-dsa-sha2-128f": (0x01, 16, 17088, slh_params.sha2_128f),
    "slh-dsa-shake-192s": (0x02, 24, 16224, slh_params.shake_192s),
}
"""MagnetarParams -> (record id, n, signature size, pure parameter set)."""


class Malformed(Exception):
    """The bytes are not a QuasarCert (the decoder rejects them)."""


@dataclass(frozen=True)
class VSet:
    """A validator set as the relying party holds it."""

    validators: list[dict[str, Any]]
    """Per validator: ``weight`` and the byte keys ``bls_pk``, ``bls_pop``,
    ``mldsa_pk``, ``slhdsa_pk`` (empty = not registered)."""
    slh_params: str
    corona_pk: bytes


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _merkle(leaves: list[bytes]) -> bytes:
    """zap.md §Merkle: RFC 6962, ``sha256(0x00 || x)`` leaves, split at a power of two."""
    if len(leaves) == 1:
        return _sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _sha(b"\x01" + _merkle(leaves[:k]) + _merkle(leaves[k:]))


def _record(i: int, v: dict[str, Any], param_id: int) -> bytes:
    bls: bytes = v["bls_pk"]
    ml: bytes = v["mldsa_pk"]
    slh: bytes = v["slhdsa_pk"]
    out = struct.pack(">IQ", i, v["weight"]) + struct.pack(">H", len(bls)) + bls
    out += struct.pack(">H", len(ml)) + ml
    return out + struct.pack(">BH", param_id, len(slh)) + slh


def vset_root(vset: VSet) -> bytes:
    """``sha256("zapstack/vset/v1" || 0x00 || n u32 || M || C)``."""
    param_id = SLH[vset.slh_params][0]
    records = [_record(i, v, param_id) for i, v in enumerate(vset.validators)]
    c = _sha(vset.corona_pk) if vset.corona_pk else bytes(32)
    n = struct.pack(">I", len(records))
    return _sha(b"zapstack/vset/v1\x00" + n + _merkle(records) + c)


def leg_digest(leg: str, header: tuple[int, int, int, bytes, bytes]) -> bytes:
    """What leg ``leg`` signs for ``(chain_id, height, round, block_id, vset_root)``."""
    chain_id, height, round_, block_id, root = header
    body = struct.pack(">QQI", chain_id, height, round_) + block_id + root
    lid = LEGS.index(leg) + 1
    return _sha(b"zapstack/quasarcert/v1/" + leg.encode() + b"\x00" + body + bytes([lid]))


def decode(data: bytes) -> tuple[tuple[int, int, int, bytes, bytes], dict[str, bytes]]:
    """``(header, fields)``; :class:`Malformed` for anything the layout forbids."""
    if len(data) < HEADER:
        raise Malformed("short header")
    if data[:4] != b"QCRT" or data[4] != 1:
        raise Malformed("magic or version")
    chain_id, height, round_ = struct.unpack_from(">QQI", data, 5)
    header = (chain_id, height, round_, data[25:57], data[57:89])
    pos, fields = HEADER, {}
    for leg in LEGS:
        if pos + 4 > len(data):
            raise Malformed("no length")
        (n,) = struct.unpack_from(">I", data, pos)
        if n > MAX_FIELD or pos + 4 + n > len(data):
            raise Malformed("field too long or past the end")
        fields[leg] = data[pos + 4 : pos + 4 + n]
        pos += 4 + n
    if pos != len(data):
        raise Malformed("trailing bytes")
    return header, fields


class _LegFails(Exception):
    pass


def _signers(vset: VSet, bitmap: bytes) -> list[int]:
    n = len(vset.validators)
    if len(bitmap) != (n + 7) // 8:
        raise _LegFails("bitmap length")
    out = [i for i in range(8 * len(bitmap)) if bitmap[i >> 3] & (0x80 >> (i & 7))]
    if any(i >= n for i in out):
        raise _LegFails("padding bit set")
    threshold = 2 * sum(v["weight"] for v in vset.validators) // 3 + 1
    if sum(vset.validators[i]["weight"] for i in out) < threshold:
        raise _LegFails("below threshold")
    return out


def _bls(vset: VSet, digest: bytes, field: bytes) -> list[int]:
    blen = (len(vset.validators) + 7) // 8
    if len(field) != blen + 96:
        raise _LegFails("length")
    signers = _signers(vset, field[:blen])
    keys = [vset.validators[i]["bls_pk"] for i in signers]
    if not all(keys):
        raise _LegFails("no key")
    try:
        pks = [G1Element.from_bytes(k) for k in keys]
        ok = PopSchemeMPL.fast_aggregate_verify(pks, digest, G2Element.from_bytes(field[blen:]))
    except (ValueError, RuntimeError) as exc:
        raise _LegFails("not a point") from exc
    if not ok:
        raise _LegFails("aggregate")
    return signers


def _quorum(vset: VSet, digest: bytes, field: bytes, leg: str) -> list[int]:
    blen = (len(vset.validators) + 7) // 8
    size = mldsa65.SIG_SIZE if leg == "pulsar" else SLH[vset.slh_params][2]
    if len(field) < blen:
        raise _LegFails("short")
    signers = _signers(vset, field[:blen])
    if len(field) != blen + size * len(signers):
        raise _LegFails("length")
    for k, i in enumerate(signers):
        key = vset.validators[i]["mldsa_pk" if leg == "pulsar" else "slhdsa_pk"]
        sig = field[blen + k * size : blen + (k + 1) * size]
        if not key or not _verify_one(vset, leg, key, digest, sig):
            raise _LegFails(f"signature of {i}")
    return signers


def _verify_one(vset: VSet, leg: str, key: bytes, digest: bytes, sig: bytes) -> bool:
    if leg == "pulsar":
        return mldsa65.verify(key, digest, sig)
    _, n, _, par = SLH[vset.slh_params]
    if len(key) != 2 * n:
        return False
    return bool(slhdsa.PublicKey((key[:n], key[n:]), par).verify_pure(digest, sig))


def _corona(vset: VSet, digest: bytes, field: bytes) -> list[int]:
    from zapstack.crypto import ringtail  # no independent Ringtail exists

    if not vset.corona_pk:
        raise _LegFails("no group key")
    try:
        ok = ringtail.verify(ringtail.GroupPublicKey.from_bytes(vset.corona_pk), digest, field)
    except Exception as exc:  # a malformed field
        raise _LegFails("malformed") from exc
    if not ok:
        raise _LegFails("signature")
    return []


def expected(cert: bytes, vset: VSet, block: bytes) -> dict[str, Any]:
    """The verdict on ``cert`` for a relying party holding ``vset`` and ``block``."""
    try:
        header, fields = decode(cert)
    except Malformed:
        return {"outcome": "malformed", "error": "BAD_CERT"}
    if header[3] != _sha(block) or header[4] != vset_root(vset):
        return {"outcome": "invalid", "error": "BAD_CERT", "leg": ""}
    present: list[str] = []
    signers: dict[str, list[int]] = {}
    for leg in LEGS:  # in id order: the first failing leg is the one named
        field = fields[leg]
        if not field:
            continue
        digest = leg_digest(leg, header)
        try:
            if leg == "bls":
                signers[leg] = _bls(vset, digest, field)
            elif leg == "corona":
                signers[leg] = _corona(vset, digest, field)
            else:
                signers[leg] = _quorum(vset, digest, field, leg)
        except _LegFails:
            return {"outcome": "invalid", "error": "BAD_CERT", "leg": leg}
        present.append(leg)
    meets = [mode for mode, (_, legs) in MODES.items() if legs <= set(present)]
    return {"outcome": "valid", "present": present, "signers": signers, "meets": meets}
