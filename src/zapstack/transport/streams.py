"""The stream-type table: the first byte of every zapstack QUIC stream.

Contract
--------
Every stream a zapstack node opens starts with one byte in 0xD0..0xDF naming
its type (LP-0202 §"QUIC stream isolation", LP-201 stream-type bytes).  The
table below is the only place a type is defined; ``docs/formats/streams.md``
documents the same rows and a test keeps the two equal.

* ``direction``: ``UNI`` streams carry bytes one way (the opener writes, the
  acceptor reads); ``BI`` streams are request/response (the opener writes a
  request and reads the reply on the same stream).
* ``role``: ``PUSH`` streams are fire-and-forget: a reset drops the partial
  buffer and nothing else; ``REQUEST`` streams belong to one outstanding
  request: a reset additionally marks the peer down *for that request* so the
  caller tries another peer (LP-0202 consumer-action table).
* ``opener``: which side of the connection may open the type (``ANY``,
  ``DIALER`` = the QUIC client, ``LISTENER`` = the QUIC server).  A stream
  opened by the wrong side, on the wrong direction, or with a byte outside the
  table is refused with ``STOP_SENDING(UNKNOWN_STREAM_TYPE)`` or
  ``STOP_SENDING(STREAM_PROTOCOL_VIOLATION)``.

Application error codes on ``RESET_STREAM`` / ``STOP_SENDING`` are
:class:`zapstack.errors.WireCode`, one table for the whole stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "STREAM_TYPES",
    "STREAM_TYPE_MAX",
    "STREAM_TYPE_MIN",
    "Direction",
    "Opener",
    "Role",
    "StreamSpec",
    "StreamType",
    "spec_of",
]

STREAM_TYPE_MIN = 0xD0
"""Lowest stream-type byte (LP-201)."""
STREAM_TYPE_MAX = 0xDF
"""Highest stream-type byte (LP-201)."""


class StreamType(enum.IntEnum):
    """Stream-type bytes in use.  0xDA..0xDE are reserved (refused on receipt)."""

    HELLO = 0xD0
    TX_SUBMIT = 0xD1
    BLOCK_PUSH = 0xD2
    MEMPOOL_GOSSIP = 0xD3
    VOTE = 0xD4
    PROPOSAL = 0xD5
    CERT_SHARES = 0xD6
    HEADER_RANGE = 0xD7
    STATE_CHUNK = 0xD8
    BLOCK_CHUNK = 0xD9
    DHT_RPC = 0xDA
    PROBE = 0xDF


class Direction(enum.Enum):
    """Which way bytes flow on the stream."""

    UNI = "uni"
    BI = "bi"


class Role(enum.Enum):
    """What a reset means to the consumer (LP-0202 consumer actions)."""

    PUSH = "push"
    REQUEST = "request"


class Opener(enum.Enum):
    """Which end of the QUIC connection may open the stream type."""

    ANY = "any"
    DIALER = "dialer"
    LISTENER = "listener"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One row of the stream-type table."""

    type: StreamType
    """The first byte of the stream."""
    direction: Direction
    """``UNI`` or ``BI``; a stream of the other kind is refused."""
    role: Role
    """``PUSH`` (a reset drops the partial buffer) or ``REQUEST`` (also marks the
    peer down for that one request)."""
    opener: Opener
    """Which side may open it."""
    content: str
    """What the bytes after the type byte are (one line; details in the owning doc)."""


_ROWS = (
    StreamSpec(
        StreamType.HELLO, Direction.UNI, Role.PUSH, Opener.DIALER,
        "dialer identity: u16 BE length, SubjectPublicKeyInfo DER, ECDSA-P256 "
        "signature over the hello transcript (docs/formats/streams.md §Hello)",
    ),
    StreamSpec(
        StreamType.TX_SUBMIT, Direction.BI, Role.REQUEST, Opener.ANY,
        "request: exactly one tx ZAP frame, then FIN (tx receive pipeline, stages "
        "1-5); reply: one 45-byte answer (code, tx id, credit, account nonce), then FIN; a frame "
        "refused at stages 1-4 is answered by resetting the stream with the stage's "
        "code (docs/formats/streams.md §TX_SUBMIT answer)",
    ),
    StreamSpec(
        StreamType.BLOCK_PUSH, Direction.UNI, Role.PUSH, Opener.ANY,
        "one finalized block, FIN ends it: between validators a consensus FINAL "
        "message (docs/formats/consensus-wire.md); to a HEADER_RANGE subscriber the "
        "block ZAP frame followed by its QuasarCert (docs/formats/bootstrap.md §4)",
    ),
    StreamSpec(
        StreamType.MEMPOOL_GOSSIP, Direction.UNI, Role.PUSH, Opener.ANY,
        "newly admitted tx ZAP frames back to back (each delimited by its own "
        "total_length); FIN ends the batch (docs/formats/bootstrap.md §5)",
    ),
    StreamSpec(
        StreamType.VOTE, Direction.UNI, Role.PUSH, Opener.ANY,
        "long-lived, to a HEADER_RANGE subscriber: records back to back, each a u32 "
        "length then one consensus message the validator sent (its SHARE messages; "
        "docs/formats/bootstrap.md §6)",
    ),
    StreamSpec(
        StreamType.PROPOSAL, Direction.UNI, Role.PUSH, Opener.ANY,
        "one consensus PROPOSAL message (header, then the block ZAP frame) from the "
        "round's proposer; FIN ends it (docs/formats/consensus-wire.md)",
    ),
    StreamSpec(
        StreamType.CERT_SHARES, Direction.UNI, Role.PUSH, Opener.ANY,
        "one consensus message per stream: SHARE (one BLS, Pulsar or Magnetar leg "
        "share), CORONA_COMMIT, CORONA_SIGNERS, CORONA_RESPONSE, CERT_UPGRADE or "
        "CORONA_PRECOMMIT; FIN ends it (docs/formats/consensus-wire.md)",
    ),
    StreamSpec(
        StreamType.HEADER_RANGE, Direction.BI, Role.REQUEST, Opener.ANY,
        "request: version, flags (subscriptions, CERTS_ONLY), start height, count; "
        "reply: head height, then block and QuasarCert records in height order "
        "(docs/formats/bootstrap.md §3)",
    ),
    StreamSpec(
        StreamType.STATE_CHUNK, Direction.BI, Role.REQUEST, Opener.ANY,
        "request: version, state root, depth, first chunk index, count; reply: that "
        "many state chunk records (entries and sibling hashes) in index order "
        "(docs/formats/bootstrap.md §2)",
    ),
    StreamSpec(
        StreamType.BLOCK_CHUNK, Direction.BI, Role.REQUEST, Opener.ANY,
        "one DHT GET_HEADER (block id) or GET_CHUNK (block id, chunk index) and its "
        "reply: HEADER, or CHUNK with up to 64 KiB of payload and its Merkle proof "
        "(docs/formats/chunks.md)",
    ),
    StreamSpec(
        StreamType.DHT_RPC, Direction.BI, Role.REQUEST, Opener.ANY,
        "one Kademlia RPC (PING, FIND_NODE, FIND_VALUE, STORE, ADD_PROVIDER, "
        "GET_PROVIDERS) and its reply (docs/formats/dht.md)",
    ),
    StreamSpec(
        StreamType.PROBE, Direction.UNI, Role.PUSH, Opener.ANY,
        "opaque bytes counted by the receiver: transport vectors and benchmarks only",
    ),
)  # fmt: skip

STREAM_TYPES: dict[StreamType, StreamSpec] = {row.type: row for row in _ROWS}
"""Stream type -> its row.  The dispatch table of the session layer."""


def spec_of(byte: int) -> StreamSpec | None:
    """The row for a received type byte, or ``None`` if it is not in the table."""
    try:
        return STREAM_TYPES[StreamType(byte)]
    except ValueError:
        return None
