import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.node.wire import (
    STREAM_OF,
    MsgType,
    decode,
    decode_signers,
    encode,
    encode_final,
    encode_signers,
    split_final,
)
from zapstack.transport.streams import StreamType


@given(
    st.sampled_from(list(MsgType)),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 65535),
    st.binary(min_size=1, max_size=64),
)
def test_round_trip(kind: MsgType, height: int, round_: int, sender: int, payload: bytes) -> None:
    msg = decode(encode(kind, height, round_, sender, payload), STREAM_OF[kind])
    assert (msg.type, msg.height, msg.round, msg.sender, msg.payload) == (
        kind,
        height,
        round_,
        sender,
        payload,
    )


def test_every_prefix_is_rejected_cleanly() -> None:
    data = encode(MsgType.SHARE, 5, 1, 2, b"\x01share")
    for cut in range(15):
        with pytest.raises(RemoteProtocolError) as exc:
            decode(data[:cut])
        assert exc.value.code == WireCode.STREAM_PROTOCOL_VIOLATION


@pytest.mark.parametrize("data", [bytes([99]) + bytes(15), encode(MsgType.FINAL, 1, 0, 0, b"x")])
def test_unknown_type_or_wrong_stream(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(data, StreamType.PROPOSAL)


@given(st.dictionaries(st.integers(0, 100), st.binary(max_size=50), max_size=6))
def test_signers_round_trip(commitments: dict[int, bytes]) -> None:
    assert decode_signers(encode_signers(commitments)) == commitments


def test_signers_strict() -> None:
    good = encode_signers({1: b"abc", 2: b"de"})
    for cut in range(1, len(good)):
        with pytest.raises(RemoteProtocolError):
            decode_signers(good[:cut])
    with pytest.raises(RemoteProtocolError):
        decode_signers(good + b"\x00")


def test_final_split() -> None:
    assert split_final(encode_final(b"cert", b"block")) == (b"cert", b"block")
    with pytest.raises(RemoteProtocolError):
        split_final(b"\xff\xff\x00\x00cert")
