"""Node ids, contacts and the XOR metric.

* A node id is ``sha256(public_key)`` (32 bytes).  The public key is the one
  the transport authenticated (QUIC/TLS), so a peer cannot pick its id.
* Distance is ``int.from_bytes(a, "big") ^ int.from_bytes(b, "big")``: the
  id's first byte is the most significant.  Bucket ``i`` of a node holds the
  ids at distance ``[2**i, 2**(i+1))``, i.e. ``i = distance.bit_length() - 1``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from zapstack.errors import LocalProtocolError

__all__ = [
    "ID_BITS",
    "ID_LEN",
    "Contact",
    "bucket_index",
    "distance",
    "node_id",
    "random_id_in_bucket",
]

ID_LEN = 32
"""Bytes in a node id / key."""
ID_BITS = 256
"""Bits in a node id; also the number of buckets."""


@dataclass(frozen=True, slots=True)
class Contact:
    """A DHT peer: its id and where to reach it."""

    node_id: bytes
    """sha256 of the peer's public key (32 bytes)."""
    addr: str
    """Transport address, printable ASCII, 1..255 bytes (e.g. ``host:port``)."""


def node_id(public_key: bytes) -> bytes:
    """The node id of ``public_key``: its sha256."""
    return hashlib.sha256(public_key).digest()


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two 32-byte ids as a non-negative integer."""
    if len(a) != ID_LEN or len(b) != ID_LEN:
        raise LocalProtocolError("ids must be 32 bytes")
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(self_id: bytes, other: bytes) -> int:
    """Bucket of ``other`` in ``self_id``'s table (0..255); -1 for ``self_id`` itself."""
    return distance(self_id, other).bit_length() - 1


def random_id_in_bucket(self_id: bytes, index: int, rng: random.Random) -> bytes:
    """A random id at distance ``[2**index, 2**(index+1))`` from ``self_id``."""
    if not 0 <= index < ID_BITS:
        raise LocalProtocolError(f"bucket index {index} outside 0..255")
    d = (1 << index) | rng.getrandbits(index) if index else 1
    return (int.from_bytes(self_id, "big") ^ d).to_bytes(ID_LEN, "big")
