"""The DHT stream's codec: the messages of :mod:`zapstack.dht.messages`, byte-exact, and a reader.

Contract
--------
* One RPC per stream (the DHT's own stream type): the requester writes one
  request message and finishes its side; the responder writes one response
  message and finishes.  A refused request is a stream reset with a
  :class:`~zapstack.errors.WireCode`, never an error message.
* Every message is ``u8 version (=1) | u8 type | u32 LE payload_len | payload``
  (encoders and decoders are two tables keyed by class and by type byte);
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

import struct
from collections.abc import Callable
from typing import Any

from zapstack.dht.ids import ID_LEN, Contact
from zapstack.dht.messages import (
    MAX_ADDR_LEN,
    MAX_CHUNK_BYTES,
    MAX_CONTACTS,
    MAX_HEADER_BYTES,
    MAX_PROOF_HASHES,
    MAX_VALUE_BYTES,
    AddProvider,
    ChunkMsg,
    FindNode,
    FindValue,
    GetChunk,
    GetHeader,
    GetProviders,
    HeaderMsg,
    Message,
    MsgType,
    Nodes,
    Ping,
    Pong,
    ProviderAck,
    Providers,
    Store,
    Stored,
    Value,
)
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode

__all__ = ["HEADER_LEN", "VERSION", "MessageReader", "decode", "encode"]

VERSION = 1
"""The only message version."""
HEADER_LEN = 6
"""``u8 version | u8 type | u32 payload_len``."""

_U32 = struct.Struct("<I")
_HDR = struct.Struct("<BBI")
_CONTACT_MAX = ID_LEN + 1 + MAX_ADDR_LEN


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


def _e_chunk(m: ChunkMsg) -> bytes:
    if len(m.proof) > MAX_PROOF_HASHES:
        raise LocalProtocolError("proof too long")
    body = m.block_id + _U32.pack(m.index) + _U32.pack(len(m.data)) + m.data
    return body + bytes([len(m.proof)]) + b"".join(m.proof)


def _e_empty(m: Any) -> bytes:
    return b""


_Encoder = Callable[[Any], bytes]

_ENCODERS: dict[type[Message], tuple[MsgType, _Encoder]] = {
    # message class: (type byte, payload encoder)
    Ping: (MsgType.PING, _e_empty),
    Pong: (MsgType.PONG, _e_empty),
    FindNode: (MsgType.FIND_NODE, lambda m: m.target),
    Nodes: (MsgType.NODES, lambda m: _contacts(m.contacts)),
    FindValue: (MsgType.FIND_VALUE, lambda m: m.key),
    Value: (MsgType.VALUE, lambda m: m.key + m.value),
    Store: (MsgType.STORE, lambda m: m.key + m.value),
    Stored: (MsgType.STORED, _e_empty),
    AddProvider: (
        MsgType.ADD_PROVIDER,
        lambda m: m.key + _contact(Contact(bytes(ID_LEN), m.addr))[ID_LEN:],
    ),
    ProviderAck: (MsgType.PROVIDER_ACK, _e_empty),
    GetProviders: (MsgType.GET_PROVIDERS, lambda m: m.key),
    Providers: (MsgType.PROVIDERS, lambda m: _contacts(m.providers) + _contacts(m.closer)),
    GetHeader: (MsgType.GET_HEADER, lambda m: m.block_id),
    HeaderMsg: (
        MsgType.HEADER,
        lambda m: m.block_id + _U32.pack(len(m.header)) + m.header + m.trailer,
    ),
    GetChunk: (MsgType.GET_CHUNK, lambda m: m.block_id + _U32.pack(m.index)),
    ChunkMsg: (MsgType.CHUNK, _e_chunk),
}
"""Every message class, its type byte and its payload encoder (the inverse of ``_DECODERS``)."""


def _payload(msg: Message) -> tuple[MsgType, bytes]:
    entry = _ENCODERS.get(type(msg))
    if entry is None:  # pragma: no cover
        raise LocalProtocolError(f"not a DHT message: {msg!r}")
    kind, encoder = entry
    return kind, encoder(msg)


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
