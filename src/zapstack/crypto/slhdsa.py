"""SLH-DSA (FIPS 205) signatures: pqcrypto for speed, deterministic keys from seeds.

Two parameter sets are wired in (the chain's CertPolicy picks one):

========================  =====  ========  =========  ======================
parameter set             id     pk bytes  sig bytes  use
========================  =====  ========  =========  ======================
SLH-DSA-SHA2-128f         0x01   32        17088      devnets and tests
SLH-DSA-SHAKE-192s        0x02   48        16224      conformance profile
========================  =====  ========  =========  ======================

Contract
--------
* ``keygen(seed, params)`` is deterministic: the seed is expanded with
  SHAKE-256 into ``SK.seed || SK.prf || PK.seed`` (3n bytes) and ``PK.root`` is
  computed with FIPS 205 ``xmss_node`` (via the pure ``slhdsa`` package, which
  pqcrypto cannot do).  Secret key = ``SK.seed||SK.prf||PK.seed||PK.root``,
  public key = ``PK.seed||PK.root`` -- the FIPS 205 encodings.
* Signing is pure FIPS 205 with an empty context (pqcrypto randomises ``opt_rand``).
* pqcrypto holds the GIL: sign many in a process pool
  (:mod:`zapstack.consensus.pool`), never in threads.
* ``verify`` returns ``False`` on malformed input and never raises.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from types import ModuleType

from pqcrypto.sign import slh_dsa_sha2_128f, slh_dsa_shake_192s
from slhdsa.lowlevel import parameters as _slh_params
from slhdsa.lowlevel.addresses import Address
from slhdsa.lowlevel.parameters import Parameter
from slhdsa.lowlevel.xmss import XMSS

from zapstack.errors import ConfigError, LocalProtocolError

__all__ = ["PARAMS", "ParamSet", "SlhParams", "keygen", "sign", "verify"]


class ParamSet(enum.IntEnum):
    """SLH-DSA parameter sets; the value is our one-byte wire id."""

    SHA2_128F = 0x01
    SHAKE_192S = 0x02

    @property
    def label(self) -> str:
        """The FIPS 205 name, as written in genesis files."""
        return PARAMS[self].name

    @classmethod
    def from_label(cls, label: str) -> ParamSet:
        """Parse ``slh-dsa-sha2-128f`` / ``slh-dsa-shake-192s`` (case-insensitive)."""
        for ps, p in PARAMS.items():
            if p.name == label.lower():
                return ps
        known = ", ".join(p.name for p in PARAMS.values())
        raise ConfigError(f"unknown SLH-DSA parameter set {label!r}; known: {known}")


@dataclass(frozen=True, slots=True)
class SlhParams:
    """One parameter set's sizes and implementations."""

    name: str
    """Genesis label, e.g. ``slh-dsa-sha2-128f``."""
    n: int
    """Security parameter n (bytes)."""
    public_key_size: int
    secret_key_size: int
    signature_size: int
    fast: ModuleType
    """The pqcrypto module that signs and verifies."""
    pure: Parameter
    """The pure-Python ``slhdsa`` parameter object (key generation, cross-checks)."""


PARAMS: dict[ParamSet, SlhParams] = {
    ParamSet.SHA2_128F: SlhParams(
        "slh-dsa-sha2-128f", 16, 32, 64, 17088, slh_dsa_sha2_128f, _slh_params.sha2_128f
    ),
    ParamSet.SHAKE_192S: SlhParams(
        "slh-dsa-shake-192s", 24, 48, 96, 16224, slh_dsa_shake_192s, _slh_params.shake_192s
    ),
}


def keygen(seed: bytes, params: ParamSet) -> tuple[bytes, bytes]:
    """Deterministic ``(secret_key, public_key)`` from ``seed`` (>= 32 bytes)."""
    if len(seed) < 32:
        raise LocalProtocolError("SLH-DSA keygen needs a seed of at least 32 bytes")
    p = PARAMS[params]
    n = p.n
    material = hashlib.shake_256(b"zapstack/slh-dsa/keygen/v1" + seed).digest(3 * n)
    sk_seed, sk_prf, pk_seed = material[:n], material[n : 2 * n], material[2 * n :]
    par = p.pure
    root: bytes = XMSS(par).node(sk_seed, 0, par.h_m, pk_seed, Address(par.d - 1, 0))
    return sk_seed + sk_prf + pk_seed + root, pk_seed + root


def sign(secret_key: bytes, message: bytes, params: ParamSet) -> bytes:
    """A pure FIPS 205 signature (empty context) over ``message``."""
    p = PARAMS[params]
    if len(secret_key) != p.secret_key_size:
        raise LocalProtocolError(f"{p.name} secret key must be {p.secret_key_size} bytes")
    sig: bytes = p.fast.sign(secret_key, message)
    return sig


def verify(public_key: bytes, message: bytes, signature: bytes, params: ParamSet) -> bool:
    """True iff ``signature`` verifies; ``False`` on any malformed input."""
    p = PARAMS[params]
    if len(public_key) != p.public_key_size or len(signature) != p.signature_size:
        return False
    try:
        p.fast.verify(public_key, message, signature)
    except Exception:  # pqcrypto raises InvalidSignatureError (and others on odd input)
        return False
    return True
