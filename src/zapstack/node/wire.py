"""Consensus messages between validators (``docs/formats/consensus-wire.md``).

Every message travels alone on one QUIC stream (type byte first, then the
message, then FIN); the stream type is fixed per message type (``STREAM_OF``).
Layout, little-endian::

    u8 msg | u64 height | u32 round | u16 sender | payload

=====  ================  ============  =========================================
 msg   name              stream        payload
=====  ================  ============  =========================================
 1     PROPOSAL          PROPOSAL      block ZAP frame
 2     SHARE             CERT_SHARES   u8 leg (1 BLS, 2 Pulsar, 4 Magnetar) | share
 3     CORONA_COMMIT     CERT_SHARES   Ringtail round-1 commitment
 4     CORONA_SIGNERS    CERT_SHARES   u16 k | k x (u16 index | u32 len | commitment)
 5     CORONA_RESPONSE   CERT_SHARES   Ringtail round-2 response
 6     FINAL             BLOCK_PUSH    u32 cert_len | QuasarCert | block ZAP frame
 7     CERT_UPGRADE      CERT_SHARES   QuasarCert (a stronger cert of a final block)
 8     CORONA_PRECOMMIT  CERT_SHARES   Ringtail round-1 commitment prepared ahead,
                                       for (height, round) before its proposal
=====  ================  ============  =========================================

CORONA_SIGNERS with k = 0 is the aggregator's request "send me your round-1
commitment for this session" (it holds fewer than t preprocessed ones).

``decode`` is strict: unknown message types, short payloads and trailing
bytes raise :class:`~zapstack.errors.RemoteProtocolError` carrying
``STREAM_PROTOCOL_VIOLATION`` (the stream is reset; the peer's other streams
are untouched).  ``MAX_MESSAGE`` bounds what a receiver buffers.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.transport.streams import StreamType

__all__ = [
    "MAX_MESSAGE",
    "STREAM_OF",
    "Message",
    "MsgType",
    "decode",
    "decode_signers",
    "encode",
    "encode_final",
    "encode_signers",
    "split_final",
]

MAX_MESSAGE = 96 * 1024 * 1024
"""Largest message a receiver buffers (a 64 MiB block plus its cert)."""

_HEAD = struct.Struct("<BQIH")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


class MsgType(enum.IntEnum):
    """Message type byte."""

    PROPOSAL = 1
    SHARE = 2
    CORONA_COMMIT = 3
    CORONA_SIGNERS = 4
    CORONA_RESPONSE = 5
    FINAL = 6
    CERT_UPGRADE = 7
    CORONA_PRECOMMIT = 8


STREAM_OF: dict[MsgType, StreamType] = {
    MsgType.PROPOSAL: StreamType.PROPOSAL,
    MsgType.SHARE: StreamType.CERT_SHARES,
    MsgType.CORONA_COMMIT: StreamType.CERT_SHARES,
    MsgType.CORONA_SIGNERS: StreamType.CERT_SHARES,
    MsgType.CORONA_RESPONSE: StreamType.CERT_SHARES,
    MsgType.FINAL: StreamType.BLOCK_PUSH,
    MsgType.CERT_UPGRADE: StreamType.CERT_SHARES,
    MsgType.CORONA_PRECOMMIT: StreamType.CERT_SHARES,
}
"""Which stream type carries each message (a mismatch is a protocol violation)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded consensus message."""

    type: MsgType
    height: int
    round: int
    sender: int
    """Validator index of the sender (checked against the authenticated peer)."""
    payload: bytes


def _bad(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"consensus message: {reason}", code=WireCode.STREAM_PROTOCOL_VIOLATION
    )


def encode(msg: MsgType, height: int, round_: int, sender: int, payload: bytes) -> bytes:
    """The message bytes (without the stream-type byte)."""
    return _HEAD.pack(msg, height, round_, sender) + payload


def decode(data: bytes, stream: StreamType | None = None) -> Message:
    """Parse one message; ``stream`` (when given) must be the type's stream."""
    if len(data) < _HEAD.size:
        raise _bad(f"{len(data)} bytes is shorter than the {_HEAD.size}-byte header")
    if len(data) > MAX_MESSAGE:
        raise _bad("message too large")
    kind, height, round_, sender = _HEAD.unpack_from(data, 0)
    try:
        msg = MsgType(kind)
    except ValueError as exc:
        raise _bad(f"unknown message type {kind}") from exc
    if stream is not None and STREAM_OF[msg] != stream:
        raise _bad(f"{msg.name} does not travel on stream {stream.name}")
    payload = data[_HEAD.size :]
    if not payload:
        raise _bad(f"{msg.name} with an empty payload")
    return Message(msg, height, round_, sender, payload)


def encode_signers(commitments: dict[int, bytes]) -> bytes:
    """CORONA_SIGNERS payload: the chosen signers and their commitments, by index."""
    out = [_U16.pack(len(commitments))]
    for index in sorted(commitments):
        out.append(_U16.pack(index) + _U32.pack(len(commitments[index])) + commitments[index])
    return b"".join(out)


def decode_signers(payload: bytes) -> dict[int, bytes]:
    """Inverse of :func:`encode_signers`; strict."""
    if len(payload) < 2:
        raise _bad("CORONA_SIGNERS too short")
    (count,) = _U16.unpack_from(payload, 0)
    at, out = 2, {}
    for _ in range(count):
        if at + 6 > len(payload):
            raise _bad("CORONA_SIGNERS truncated")
        (index,) = _U16.unpack_from(payload, at)
        (size,) = _U32.unpack_from(payload, at + 2)
        at += 6
        if at + size > len(payload) or index in out:
            raise _bad("CORONA_SIGNERS entry overruns or repeats")
        out[index] = payload[at : at + size]
        at += size
    if at != len(payload):
        raise _bad("CORONA_SIGNERS has trailing bytes")
    return out


def encode_final(cert: bytes, block: bytes) -> bytes:
    """FINAL payload."""
    return _U32.pack(len(cert)) + cert + block


def split_final(payload: bytes) -> tuple[bytes, bytes]:
    """(cert bytes, block bytes) of a FINAL payload."""
    if len(payload) < 4:
        raise _bad("FINAL too short")
    (size,) = _U32.unpack_from(payload, 0)
    if 4 + size >= len(payload):
        raise _bad("FINAL cert length overruns the payload")
    return payload[4 : 4 + size], payload[4 + size :]
