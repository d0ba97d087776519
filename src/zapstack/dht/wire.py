"""The DHT stream's messages: byte-exact codec and an incremental reader.

Contract
--------
* One RPC per stream (the DHT's own stream type): the requester writes one
  request message and finishes its side; the responder writes one response
  message and finishes.  A refused request is a stream reset with a
  :class:`~zapstack.errors.WireCode`, never an error message.
* Every message is ``u8 version (=1) | u8 type | u32 LE payload_len | payload``;
  the payload layout of each type is in ``docs/formats/dht.md`` (DHT RPCs) and
  ``docs/formats/chunks.md`` (header and chunk transfer).
* :func:`decode` takes one whole message; :class:`MessageReader` takes bytes in
  any split (``receive_data`` then ``next_message`` -> message or ``None``).
  Any malformed input raises :class:`~zapstack.errors.RemoteProtocolError`
  carrying the code to reset the stream with and the offending byte offset.
* The sender's identity is never read from a message: it is sha256 of the
  public key the transport authenticated (see :mod:`zapstack.dht.ids`).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass

from zapstack.dht.ids import ID_LEN, Contact
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode

__all__ = [
    "HEADER_LEN",
    "MAX_ADDR_LEN",
    "MAX_CONTACTS",
    "MAX_HEADER_BYTES",
    "MAX_PROOF_HASHES",
    "MAX_VALUE_BYTES",
    "VERSION",
    "AddProvider",
    "ChunkMsg",
    "FindNode",
    "FindValue",
    "GetChunk",
    "GetHeader",
    "GetProviders",
    "HeaderMsg",
    "Message",
    "MessageReader",
    "MsgType",
    "Nodes",
    "Ping",
    "Pong",
    "ProviderAck",
    "Providers",
    "Store",
    "Stored",
    "Value",
    "decode",
    "encode",
]

VERSION = 1
"""The only message version."""
HEADER_LEN = 6
"""``u8 version | u8 type | u32 payload_len``."""
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

_U32 = struct.Struct("<I")
_HDR = struct.Struct("<BBI")
_CONTACT_MAX = ID_LEN + 1 + MAX_ADDR_LEN


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


# ---------------------------------------------------------------- encoding


def _contact(c: Contact) -> bytes:
    a = c.addr.encode("ascii")
    if len(c.node_id) != ID_LEN or not 1 <= len(a) <= MAX_ADDR_LEN:
        raise LocalProtocolError(f"bad contact {c!r}")
    return c.node_id + bytes([len(a)]) + a


def _contacts(cs: tuple[Contact, ...]) -> bytes:
    if len(cs) > MAX_CONTACTS:
        raise LocalProtocolError(f"{len(cs)} contacts > {MAX_CONTACTS}")
    return bytes([len(cs)]) + b"".join(_contact(c) for c in cs)


def _payload(msg: Message) -> tuple[MsgType, bytes]:
    match msg:
        case Ping():
            return MsgType.PING, b""
        case Pong():
            return MsgType.PONG, b""
        case FindNode(target):
            return MsgType.FIND_NODE, target
        case Nodes(cs):
            return MsgType.NODES, _contacts(cs)
        case FindValue(key):
            return MsgType.FIND_VALUE, key
        case Value(key, value):
            return MsgType.VALUE, key + value
        case Store(key, value):
            return MsgType.STORE, key + value
        case Stored():
            return MsgType.STORED, b""
        case AddProvider(key, addr):
            return MsgType.ADD_PROVIDER, key + _contact(Contact(bytes(ID_LEN), addr))[ID_LEN:]
        case ProviderAck():
            return MsgType.PROVIDER_ACK, b""
        case GetProviders(key):
            return MsgType.GET_PROVIDERS, key
        case Providers(ps, closer):
            return MsgType.PROVIDERS, _contacts(ps) + _contacts(closer)
        case GetHeader(bid):
            return MsgType.GET_HEADER, bid
        case HeaderMsg(bid, header, trailer):
            return MsgType.HEADER, bid + _U32.pack(len(header)) + header + trailer
        case GetChunk(bid, index):
            return MsgType.GET_CHUNK, bid + _U32.pack(index)
        case ChunkMsg(bid, index, data, proof):
            if len(proof) > MAX_PROOF_HASHES:
                raise LocalProtocolError("proof too long")
            body = bid + _U32.pack(index) + _U32.pack(len(data)) + data
            return MsgType.CHUNK, body + bytes([len(proof)]) + b"".join(proof)
    raise LocalProtocolError(f"not a DHT message: {msg!r}")  # pragma: no cover


def encode(msg: Message) -> bytes:
    """The message's bytes; the result always decodes back to ``msg``.

    Raises :class:`LocalProtocolError` for a message that breaks the limits.
    """
    kind, payload = _payload(msg)
    out = _HDR.pack(VERSION, kind, len(payload)) + payload
    try:
        decode(out)  # our own output must satisfy the same rules we enforce on peers
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"refusing to send a malformed {kind.name}: {exc}") from exc
    return out


# ---------------------------------------------------------------- decoding


class _Cursor:
    """Bounds-checked reads over one payload; errors name the absolute offset."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise _err(f"{what}: truncated", WireCode.TRUNCATED, len(self.buf))
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.take(4, what))[0])

    def rest(self) -> bytes:
        out = self.buf[self.pos :]
        self.pos = len(self.buf)
        return out

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise _err("trailing bytes in payload", WireCode.TRAILING_DATA, self.pos)


def _err(msg: str, code: WireCode, payload_offset: int) -> RemoteProtocolError:
    return RemoteProtocolError(msg, code=code, offset=HEADER_LEN + payload_offset)


def _addr(cur: _Cursor) -> str:
    n = cur.u8("addr length")
    if n == 0:
        raise _err("empty address", WireCode.BAD_FIELD, cur.pos - 1)
    start = cur.pos
    raw = cur.take(n, "address")
    for i, b in enumerate(raw):
        if not 0x21 <= b <= 0x7E:
            raise _err("address byte not printable ASCII", WireCode.BAD_FIELD, start + i)
    return raw.decode("ascii")


def _read_contacts(cur: _Cursor) -> tuple[Contact, ...]:
    n = cur.u8("contact count")
    if n > MAX_CONTACTS:
        raise _err(f"{n} contacts > {MAX_CONTACTS}", WireCode.BAD_FIELD_COUNT, cur.pos - 1)
    return tuple(Contact(cur.take(ID_LEN, "node id"), _addr(cur)) for _ in range(n))


def _record(cur: _Cursor) -> tuple[bytes, bytes]:
    key = cur.take(ID_LEN, "key")
    value = cur.rest()
    if not value:
        raise _err("empty value", WireCode.BAD_LENGTH, cur.pos)
    return key, value


def _d_chunk(cur: _Cursor) -> ChunkMsg:
    bid = cur.take(ID_LEN, "block id")
    index = cur.u32("index")
    n = cur.u32("data length")
    if not 1 <= n <= MAX_CHUNK_BYTES:
        raise _err(
            f"chunk length {n} outside 1..{MAX_CHUNK_BYTES}", WireCode.BAD_LENGTH, cur.pos - 4
        )
    data = cur.take(n, "chunk data")
    p = cur.u8("proof count")
    if p > MAX_PROOF_HASHES:
        raise _err(f"{p} proof hashes > {MAX_PROOF_HASHES}", WireCode.BAD_FIELD_COUNT, cur.pos - 1)
    proof = tuple(cur.take(32, "proof hash") for _ in range(p))
    return ChunkMsg(bid, index, data, proof)


def _d_header(cur: _Cursor) -> HeaderMsg:
    bid = cur.take(ID_LEN, "block id")
    n = cur.u32("header length")
    if not 1 <= n <= MAX_HEADER_BYTES:
        raise _err(
            f"header length {n} outside 1..{MAX_HEADER_BYTES}", WireCode.BAD_LENGTH, cur.pos - 4
        )
    header = cur.take(n, "header")
    trailer = cur.rest()
    if len(trailer) > MAX_HEADER_BYTES:
        raise _err("trailer too long", WireCode.BAD_LENGTH, cur.pos - len(trailer))
    return HeaderMsg(bid, header, trailer)


_Decoder = Callable[[_Cursor], Message]

_DECODERS: dict[MsgType, tuple[int, int, _Decoder]] = {
    # type: (min payload, max payload, decoder)
    MsgType.PING: (0, 0, lambda c: Ping()),
    MsgType.PONG: (0, 0, lambda c: Pong()),
    MsgType.FIND_NODE: (ID_LEN, ID_LEN, lambda c: FindNode(c.take(ID_LEN, "target"))),
    MsgType.NODES: (1, 1 + MAX_CONTACTS * _CONTACT_MAX, lambda c: Nodes(_read_contacts(c))),
    MsgType.FIND_VALUE: (ID_LEN, ID_LEN, lambda c: FindValue(c.take(ID_LEN, "key"))),
    MsgType.VALUE: (ID_LEN + 1, ID_LEN + MAX_VALUE_BYTES, lambda c: Value(*_record(c))),
    MsgType.STORE: (ID_LEN + 1, ID_LEN + MAX_VALUE_BYTES, lambda c: Store(*_record(c))),
    MsgType.STORED: (0, 0, lambda c: Stored()),
    MsgType.ADD_PROVIDER: (
        ID_LEN + 2,
        ID_LEN + 1 + MAX_ADDR_LEN,
        lambda c: AddProvider(c.take(ID_LEN, "key"), _addr(c)),
    ),
    MsgType.PROVIDER_ACK: (0, 0, lambda c: ProviderAck()),
    MsgType.GET_PROVIDERS: (ID_LEN, ID_LEN, lambda c: GetProviders(c.take(ID_LEN, "key"))),
    MsgType.PROVIDERS: (
        2,
        2 + 2 * MAX_CONTACTS * _CONTACT_MAX,
        lambda c: Providers(_read_contacts(c), _read_contacts(c)),
    ),
    MsgType.GET_HEADER: (ID_LEN, ID_LEN, lambda c: GetHeader(c.take(ID_LEN, "block id"))),
    MsgType.HEADER: (ID_LEN + 4 + 1, ID_LEN + 4 + 2 * MAX_HEADER_BYTES, _d_header),
    MsgType.GET_CHUNK: (
        ID_LEN + 4,
        ID_LEN + 4,
        lambda c: GetChunk(c.take(ID_LEN, "block id"), c.u32("index")),
    ),
    MsgType.CHUNK: (
        ID_LEN + 4 + 4 + 1 + 1,
        ID_LEN + 4 + 4 + MAX_CHUNK_BYTES + 1 + 32 * MAX_PROOF_HASHES,
        _d_chunk,
    ),
}
"""Every message type, its payload length bounds and its decoder."""

MAX_PAYLOAD = max(hi for _, hi, _ in _DECODERS.values())


def _check_header(head: bytes) -> tuple[MsgType, int]:
    """Validate the 6-byte message header; return (type, payload_len)."""
    if head[0] != VERSION:
        raise RemoteProtocolError(
            f"version {head[0]} != {VERSION}", code=WireCode.BAD_VERSION, offset=0
        )
    try:
        kind = MsgType(head[1])
    except ValueError:
        raise RemoteProtocolError(
            f"unknown message type 0x{head[1]:02x}", code=WireCode.UNKNOWN_KIND, offset=1
        ) from None
    n = int(_U32.unpack_from(head, 2)[0])
    lo, hi, _ = _DECODERS[kind]
    if not lo <= n <= hi:
        raise RemoteProtocolError(
            f"{kind.name} payload length {n} outside {lo}..{hi}",
            code=WireCode.BAD_LENGTH,
            offset=2,
        )
    return kind, n


def _decode_payload(kind: MsgType, payload: bytes) -> Message:
    cur = _Cursor(payload)
    msg = _DECODERS[kind][2](cur)
    cur.end()
    return msg


def decode(data: bytes) -> Message:
    """Decode exactly one whole message; raise RemoteProtocolError otherwise."""
    if len(data) < HEADER_LEN:
        raise RemoteProtocolError(
            "message header truncated", code=WireCode.TRUNCATED, offset=len(data)
        )
    kind, n = _check_header(data[:HEADER_LEN])
    if len(data) < HEADER_LEN + n:
        raise RemoteProtocolError("payload truncated", code=WireCode.TRUNCATED, offset=len(data))
    if len(data) > HEADER_LEN + n:
        raise RemoteProtocolError(
            "bytes after the message", code=WireCode.TRAILING_DATA, offset=HEADER_LEN + n
        )
    return _decode_payload(kind, bytes(data[HEADER_LEN:]))


class MessageReader:
    """Incremental reader for one stream carrying exactly one message.

    Feed bytes with :meth:`receive_data` (any split, including one byte at a
    time); :meth:`next_message` returns the message once complete, else
    ``None``.  :meth:`end_of_stream` must be called when the peer finishes its
    side: it raises if the message was incomplete.  A header is validated as
    soon as its 6 bytes are present, so an oversize length is refused before
    its payload is buffered.  Bytes past the one message raise TRAILING_DATA.
    """

    __slots__ = ("_buf", "_done", "_kind", "_need", "_seen")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._kind: MsgType | None = None
        self._need = HEADER_LEN
        self._done = False
        self._seen = 0

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes; raise RemoteProtocolError as soon as they prove the stream bad."""
        if not data:
            return
        if self._done:
            raise RemoteProtocolError(
                "bytes after the message", code=WireCode.TRAILING_DATA, offset=self._seen
            )
        self._buf += data
        self._seen += len(data)
        if self._kind is None and len(self._buf) >= HEADER_LEN:
            self._kind, n = _check_header(bytes(self._buf[:HEADER_LEN]))
            self._need = HEADER_LEN + n
        if self._kind is not None and len(self._buf) > self._need:
            raise RemoteProtocolError(
                "bytes after the message", code=WireCode.TRAILING_DATA, offset=self._need
            )

    def next_message(self) -> Message | None:
        """The message once all its bytes arrived (once), else ``None``."""
        if self._done or self._kind is None or len(self._buf) < self._need:
            return None
        self._done = True
        msg = _decode_payload(self._kind, bytes(self._buf[HEADER_LEN:]))
        self._buf = bytearray()
        return msg

    def end_of_stream(self) -> None:
        """The peer finished its side; raise TRUNCATED if no whole message came."""
        if not self._done and self.next_message() is None:
            raise RemoteProtocolError(
                "stream ended mid-message", code=WireCode.TRUNCATED, offset=self._seen
            )

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (dropped when the reader is)."""
        return len(self._buf)
