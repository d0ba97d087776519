"""The per-leg certificate transcript digest (``docs/formats/quasarcert.md`` §Digest).

Every QuasarCert leg signs one 32-byte digest of the same transcript, domain
separated per leg so that no leg's signature can be replayed as another's::

    leg_digest = sha256( b"zapstack/quasarcert/v1/" || leg_name || 0x00
                         || chain_id   u64 big-endian
                         || height     u64 big-endian
                         || round      u32 big-endian
                         || block_id   32 bytes   (= sha256(block bytes))
                         || vset_root  32 bytes
                         || leg_id     u8 )

The leg table (id, name) is :data:`LEG_NAMES`; the cert's field order is the
id order.  Pure functions only.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from zapstack.errors import LocalProtocolError

__all__ = ["LEG_NAMES", "CertContext", "LegId", "block_id", "corona_session_id", "leg_digest"]


class LegId(enum.IntEnum):
    """The four QuasarCert legs; the value is the wire id and the field order."""

    BLS = 1
    PULSAR = 2
    CORONA = 3
    MAGNETAR = 4

    @property
    def label(self) -> str:
        """Lower-case name used in digests, vectors and errors."""
        return LEG_NAMES[self]

    @classmethod
    def from_label(cls, label: str) -> LegId:
        """Inverse of :attr:`label`."""
        for leg, name in LEG_NAMES.items():
            if name == label:
                return leg
        raise LocalProtocolError(f"unknown leg {label!r}; known: {sorted(LEG_NAMES.values())}")


LEG_NAMES: dict[LegId, str] = {
    LegId.BLS: "bls",
    LegId.PULSAR: "pulsar",
    LegId.CORONA: "corona",
    LegId.MAGNETAR: "magnetar",
}

_DOMAIN = b"zapstack/quasarcert/v1/"
_SESSION_DOMAIN = b"zapstack/corona/session/v1\x00"
_BODY = struct.Struct(">QQI32s32s")

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


def block_id(block_bytes: bytes | bytearray | memoryview) -> bytes:
    """A block's identity: sha256 of its bytes (content addressing)."""
    return hashlib.sha256(block_bytes).digest()


@dataclass(frozen=True, slots=True)
class CertContext:
    """Everything a cert leg's transcript commits to except the leg id."""

    chain_id: int
    """Chain identifier (u64)."""
    height: int
    """Block height (u64)."""
    round: int
    """Consensus round at that height (u32)."""
    block_id: bytes
    """sha256 of the block bytes (32 bytes)."""
    vset_root: bytes
    """The validator-set root (32 bytes), see ``validators.ValidatorSet.root``."""

    def __post_init__(self) -> None:
        if not 0 <= self.chain_id <= U64_MAX or not 0 <= self.height <= U64_MAX:
            raise LocalProtocolError("chain_id and height must fit in u64")
        if not 0 <= self.round <= U32_MAX:
            raise LocalProtocolError("round must fit in u32")
        if len(self.block_id) != 32 or len(self.vset_root) != 32:
            raise LocalProtocolError("block_id and vset_root must be 32 bytes")

    def body(self) -> bytes:
        """The fixed 84-byte transcript body shared by every leg."""
        return _BODY.pack(self.chain_id, self.height, self.round, self.block_id, self.vset_root)


def leg_digest(ctx: CertContext, leg: LegId) -> bytes:
    """The 32-byte digest leg ``leg`` signs for ``ctx``."""
    h = hashlib.sha256(_DOMAIN + LEG_NAMES[leg].encode() + b"\x00")
    h.update(ctx.body())
    h.update(bytes([int(leg)]))
    return h.digest()


def corona_session_id(chain_id: int, height: int, round_: int, vset_root: bytes) -> bytes:
    """The Ringtail session id of one (chain, height, round, validator set).

    Message independent, so round 1 may be precomputed before the block is
    known; each signer still answers round 2 at most once per session.
    """
    return hashlib.sha256(
        _SESSION_DOMAIN + struct.pack(">QQI", chain_id, height, round_) + vset_root
    ).digest()
