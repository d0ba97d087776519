"""The DHT stream's messages as values: one frozen dataclass per request and response.

Each message type has a type byte (:class:`MsgType`: a response is its
request's type | 0x80) and a documented payload; the byte layout and the
codec are in :mod:`zapstack.dht.wire` (``docs/formats/dht.md``,
``docs/formats/chunks.md``).  The ``MAX_*`` limits bound the fields; the codec
refuses to send or accept a message that breaks them.  Values only: no IO, no
state, safe to share with any thread.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zapstack.dht.ids import Contact

__all__ = [
    "MAX_ADDR_LEN",
    "MAX_CHUNK_BYTES",
    "MAX_CONTACTS",
    "MAX_HEADER_BYTES",
    "MAX_PROOF_HASHES",
    "MAX_VALUE_BYTES",
    "AddProvider",
    "ChunkMsg",
    "FindNode",
    "FindValue",
    "GetChunk",
    "GetHeader",
    "GetProviders",
    "HeaderMsg",
    "Message",
    "MsgType",
    "Nodes",
    "Ping",
    "Pong",
    "ProviderAck",
    "Providers",
    "Store",
    "Stored",
    "Value",
]

MAX_VALUE_BYTES = 64 * 1024
"""Largest value record (STORE / VALUE)."""
MAX_HEADER_BYTES = 16 * 1024
"""Largest block header served by HEADER."""
MAX_CHUNK_BYTES = 64 * 1024
"""A chunk is at most the Merkle chunk size."""
MAX_PROOF_HASHES = 32
"""An inclusion proof of a tree with < 2^32 leaves has at most 32 hashes."""
MAX_CONTACTS = 20
"""k: the most contacts in one NODES / PROVIDERS list."""
MAX_ADDR_LEN = 255
"""Longest contact address (printable ASCII 0x21..0x7E)."""


class MsgType(enum.IntEnum):
    """Message type byte; responses are the request type | 0x80."""

    PING = 0x01
    FIND_NODE = 0x02
    FIND_VALUE = 0x03
    STORE = 0x04
    ADD_PROVIDER = 0x05
    GET_PROVIDERS = 0x06
    GET_HEADER = 0x07
    GET_CHUNK = 0x08
    PONG = 0x81
    NODES = 0x82
    VALUE = 0x83
    STORED = 0x84
    PROVIDER_ACK = 0x85
    PROVIDERS = 0x86
    HEADER = 0x87
    CHUNK = 0x88


@dataclass(frozen=True, slots=True)
class Ping:
    """Liveness probe; answered by :class:`Pong`."""


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to :class:`Ping`."""


@dataclass(frozen=True, slots=True)
class FindNode:
    """Ask for the k contacts closest to ``target``."""

    target: bytes
    """32-byte id being looked up."""


@dataclass(frozen=True, slots=True)
class Nodes:
    """Up to k contacts (answer to FIND_NODE, FIND_VALUE miss)."""

    contacts: tuple[Contact, ...]
    """Closest contacts the responder knows, nearest first."""


@dataclass(frozen=True, slots=True)
class FindValue:
    """Ask for the value whose sha256 is ``key``."""

    key: bytes
    """sha256 of the wanted value."""


@dataclass(frozen=True, slots=True)
class Value:
    """A value record (answer to FIND_VALUE hit)."""

    key: bytes
    """sha256(value): the receiver checks it before use."""
    value: bytes
    """The record bytes, 1..MAX_VALUE_BYTES."""


@dataclass(frozen=True, slots=True)
class Store:
    """Store ``value`` under ``key``; the responder checks key == sha256(value)."""

    key: bytes
    """Claimed sha256(value)."""
    value: bytes
    """The record bytes, 1..MAX_VALUE_BYTES."""


@dataclass(frozen=True, slots=True)
class Stored:
    """Answer to STORE: the record is held."""


@dataclass(frozen=True, slots=True)
class AddProvider:
    """Announce that the (authenticated) sender serves the block ``key``."""

    key: bytes
    """Block id (sha256 of the block bytes)."""
    addr: str
    """The address at which the sender serves it."""


@dataclass(frozen=True, slots=True)
class ProviderAck:
    """Answer to ADD_PROVIDER."""


@dataclass(frozen=True, slots=True)
class GetProviders:
    """Ask who serves block ``key``."""

    key: bytes
    """Block id."""


@dataclass(frozen=True, slots=True)
class Providers:
    """Known providers of a key plus closer contacts."""

    providers: tuple[Contact, ...]
    """Contacts that announced the key (at most k)."""
    closer: tuple[Contact, ...]
    """Closest contacts to the key the responder knows (at most k)."""


@dataclass(frozen=True, slots=True)
class GetHeader:
    """Ask for the header bytes of block ``block_id``."""

    block_id: bytes
    """sha256 of the whole block."""


@dataclass(frozen=True, slots=True)
class HeaderMsg:
    """The block's bytes outside its payload (unverifiable alone; see chunks.md)."""

    block_id: bytes
    """Echo of the requested block id."""
    header: bytes
    """The prefix before the payload, 1..MAX_HEADER_BYTES."""
    trailer: bytes = b""
    """The suffix after the payload (a ZAP block's signature), 0..MAX_HEADER_BYTES."""


@dataclass(frozen=True, slots=True)
class GetChunk:
    """Ask for chunk ``index`` of block ``block_id``'s payload."""

    block_id: bytes
    """sha256 of the whole block."""
    index: int
    """Chunk index (u32)."""


@dataclass(frozen=True, slots=True)
class ChunkMsg:
    """One payload chunk with its inclusion proof against ``chunk_root``."""

    block_id: bytes
    """Echo of the requested block id."""
    index: int
    """Chunk index (u32)."""
    data: bytes
    """Chunk bytes, 1..MAX_CHUNK_BYTES."""
    proof: tuple[bytes, ...]
    """RFC 6962 audit path, bottom-up, at most MAX_PROOF_HASHES hashes."""


Message = (
    Ping
    | Pong
    | FindNode
    | Nodes
    | FindValue
    | Value
    | Store
    | Stored
    | AddProvider
    | ProviderAck
    | GetProviders
    | Providers
    | GetHeader
    | HeaderMsg
    | GetChunk
    | ChunkMsg
)
