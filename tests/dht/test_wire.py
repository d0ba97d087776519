"""DHT message codec: round trips, byte-exact layouts, malformed input, fed whole and byte by byte."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.dht import messages, wire
from zapstack.dht.ids import Contact
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode

ID = bytes(range(32))
C1 = Contact(b"\x11" * 32, "10.0.0.1:9000")
C2 = Contact(b"\x22" * 32, "node-2.example:443")

SAMPLES: list[messages.Message] = [
    messages.Ping(),
    messages.Pong(),
    messages.FindNode(ID),
    messages.Nodes(()),
    messages.Nodes((C1, C2)),
    messages.FindValue(ID),
    messages.Value(ID, b"v"),
    messages.Store(ID, b"value bytes"),
    messages.Stored(),
    messages.AddProvider(ID, "1.2.3.4:5"),
    messages.ProviderAck(),
    messages.GetProviders(ID),
    messages.Providers((C1,), (C2, C1)),
    messages.GetHeader(ID),
    messages.HeaderMsg(ID, b"H" * 100),
    messages.HeaderMsg(ID, b"H" * 10, b"signature"),
    messages.GetChunk(ID, 7),
    messages.ChunkMsg(ID, 3, b"d" * 1000, (b"\x01" * 32, b"\x02" * 32)),
    messages.ChunkMsg(ID, 0, b"x", ()),
]


def _feed_bytewise(data: bytes) -> messages.Message:
    r = wire.MessageReader()
    msg = None
    for i in range(len(data)):
        r.receive_data(data[i : i + 1])
        got = r.next_message()
        if got is not None:
            assert msg is None and i == len(data) - 1
            msg = got
    r.end_of_stream()
    assert msg is not None
    return msg


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_whole_and_bytewise(msg: messages.Message) -> None:
    data = wire.encode(msg)
    assert data[0] == wire.VERSION
    assert struct.unpack_from("<I", data, 2)[0] == len(data) - wire.HEADER_LEN
    assert wire.decode(data) == msg
    assert _feed_bytewise(data) == msg


def test_every_type_has_a_sample() -> None:
    assert {wire.encode(m)[1] for m in SAMPLES} == {t.value for t in messages.MsgType}


def test_byte_exact_layouts() -> None:
    assert wire.encode(messages.Ping()).hex() == "010100000000"
    assert wire.encode(
        messages.GetChunk(ID, 0x01020304)
    ) == b"\x01\x08\x24\x00\x00\x00" + ID + bytes([4, 3, 2, 1])
    nodes = wire.encode(messages.Nodes((C1,)))
    assert nodes == b"\x01\x82" + struct.pack("<I", 1 + 32 + 1 + 13) + b"\x01" + C1.node_id + (
        b"\x0d10.0.0.1:9000"
    )
    chunk = wire.encode(messages.ChunkMsg(ID, 2, b"abc", (b"\xaa" * 32,)))
    assert chunk == (
        b"\x01\x88"
        + struct.pack("<I", 32 + 4 + 4 + 3 + 1 + 32)
        + ID
        + struct.pack("<II", 2, 3)
        + b"abc\x01"
        + b"\xaa" * 32
    )


def _hdr(kind: int, n: int, version: int = 1) -> bytes:
    return struct.pack("<BBI", version, kind, n)


MALFORMED: list[tuple[str, bytes, WireCode]] = [
    ("bad version", _hdr(0x01, 0, version=2), WireCode.BAD_VERSION),
    ("unknown type", _hdr(0x09, 0), WireCode.UNKNOWN_KIND),
    ("ping with payload", _hdr(0x01, 1) + b"\x00", WireCode.BAD_LENGTH),
    ("find_node short", _hdr(0x02, 31) + b"\x00" * 31, WireCode.BAD_LENGTH),
    ("store too big", _hdr(0x04, 32 + messages.MAX_VALUE_BYTES + 1), WireCode.BAD_LENGTH),
    ("store empty value", _hdr(0x04, 32) + ID, WireCode.BAD_LENGTH),
    ("nodes count 21", _hdr(0x82, 1) + b"\x15", WireCode.BAD_FIELD_COUNT),
    ("nodes truncated contact", _hdr(0x82, 5) + b"\x01" + b"\x00" * 4, WireCode.TRUNCATED),
    (
        "contact empty addr",
        _hdr(0x82, 34) + b"\x01" + b"\x00" * 32 + b"\x00",
        WireCode.BAD_FIELD,
    ),
    (
        "contact addr not printable",
        _hdr(0x82, 35) + b"\x01" + b"\x00" * 32 + b"\x01 ",
        WireCode.BAD_FIELD,
    ),
    (
        "nodes trailing",
        _hdr(0x82, 2) + b"\x00\x00",
        WireCode.TRAILING_DATA,
    ),
    (
        "chunk length zero",
        _hdr(0x88, 32 + 8 + 2) + ID + struct.pack("<II", 0, 0) + b"\x00\x00",
        WireCode.BAD_LENGTH,
    ),
    (
        "chunk proof count 33",
        _hdr(0x88, 32 + 8 + 1 + 1) + ID + struct.pack("<II", 0, 1) + b"x" + bytes([33]),
        WireCode.BAD_FIELD_COUNT,
    ),
    (
        "chunk data overruns",
        _hdr(0x88, 32 + 8 + 2) + ID + struct.pack("<II", 0, 5) + b"xy",
        WireCode.TRUNCATED,
    ),
]


@pytest.mark.parametrize(("name", "data", "code"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_whole_and_bytewise(name: str, data: bytes, code: WireCode) -> None:
    with pytest.raises(RemoteProtocolError) as whole:
        wire.decode(data)
    assert whole.value.code is code
    r = wire.MessageReader()
    with pytest.raises(RemoteProtocolError) as bytewise:
        for i in range(len(data)):
            r.receive_data(data[i : i + 1])
            r.next_message()
        r.end_of_stream()
    assert bytewise.value.code is code


def test_reader_refuses_oversize_before_buffering_payload() -> None:
    r = wire.MessageReader()
    with pytest.raises(RemoteProtocolError) as e:
        r.receive_data(_hdr(0x88, 10_000_000))
    assert e.value.code is WireCode.BAD_LENGTH and e.value.offset == 2


def test_truncated_and_trailing_streams() -> None:
    data = wire.encode(messages.FindNode(ID))
    r = wire.MessageReader()
    r.receive_data(data[:-1])
    assert r.next_message() is None and r.buffered == len(data) - 1
    with pytest.raises(RemoteProtocolError) as e:
        r.end_of_stream()
    assert e.value.code is WireCode.TRUNCATED
    with pytest.raises(RemoteProtocolError) as e:
        wire.decode(data + b"\x00")
    assert e.value.code is WireCode.TRAILING_DATA
    r = wire.MessageReader()
    with pytest.raises(RemoteProtocolError) as e:
        r.receive_data(data + b"\x00")
    assert e.value.code is WireCode.TRAILING_DATA
    r = wire.MessageReader()
    r.receive_data(data)
    assert r.next_message() == messages.FindNode(ID)
    with pytest.raises(RemoteProtocolError):
        r.receive_data(b"\x00")
    with pytest.raises(RemoteProtocolError) as e:
        wire.MessageReader().end_of_stream()
    assert e.value.code is WireCode.TRUNCATED


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(LocalProtocolError):
        wire.encode(messages.Nodes(tuple([C1] * 21)))
    with pytest.raises(LocalProtocolError):
        wire.encode(messages.AddProvider(ID, ""))
    with pytest.raises(LocalProtocolError):  # a value over the bound: our own rule
        wire.encode(messages.Store(ID, b"x" * (messages.MAX_VALUE_BYTES + 1)))


_contacts = st.builds(
    Contact,
    st.binary(min_size=32, max_size=32),
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
    ),
)
_id = st.binary(min_size=32, max_size=32)
_messages = st.one_of(
    st.builds(messages.FindNode, _id),
    st.builds(messages.Nodes, st.lists(_contacts, max_size=20).map(tuple)),
    st.builds(messages.Value, _id, st.binary(min_size=1, max_size=300)),
    st.builds(messages.Store, _id, st.binary(min_size=1, max_size=300)),
    st.builds(
        messages.Providers,
        st.lists(_contacts, max_size=5).map(tuple),
        st.lists(_contacts, max_size=5).map(tuple),
    ),
    st.builds(
        messages.ChunkMsg,
        _id,
        st.integers(0, 2**32 - 1),
        st.binary(min_size=1, max_size=200),
        st.lists(_id, max_size=32).map(tuple),
    ),
)


@given(_messages, st.lists(st.integers(1, 50), max_size=20))
def test_any_split_gives_the_same_message(msg: messages.Message, cuts: list[int]) -> None:
    data = wire.encode(msg)
    r = wire.MessageReader()
    pos = 0
    for c in cuts:
        r.receive_data(data[pos : pos + c])
        pos += c
    r.receive_data(data[pos:])
    assert r.next_message() == msg


@given(st.binary(max_size=120))
def test_random_bytes_parse_or_raise_remote_error(data: bytes) -> None:
    try:
        msg = wire.decode(data)
    except RemoteProtocolError:
        whole_ok = False
    else:
        whole_ok = True
        assert wire.encode(msg) == data
    r = wire.MessageReader()
    try:
        for i in range(len(data)):
            r.receive_data(data[i : i + 1])
        got = r.next_message()
        r.end_of_stream()
    except RemoteProtocolError:
        assert not whole_ok
    else:
        assert whole_ok and got == msg
