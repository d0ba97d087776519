"""The TX_SUBMIT answer record, byte for byte as docs/formats/streams.md lays it out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.mempool.answer import ANSWER_SIZE, SubmitAnswer, decode_answer, encode_answer


def _doc_record(code: int, tx_id: bytes, credit: int, nonce: int) -> bytes:
    """streams.md: u8 code | 32 tx_id | u32 LE credit | u64 LE account_nonce."""
    return bytes([code]) + tx_id + credit.to_bytes(4, "little") + nonce.to_bytes(8, "little")


def test_layout_is_the_documented_one() -> None:
    tx_id = bytes(range(32))
    answer = SubmitAnswer(WireCode.INSUFFICIENT_BALANCE, tx_id, 7, 0x0102030405)
    assert ANSWER_SIZE == 45
    assert encode_answer(answer) == _doc_record(0x30, tx_id, 7, 0x0102030405)
    assert decode_answer(_doc_record(0x30, tx_id, 7, 0x0102030405)) == answer
    assert not answer.admitted and SubmitAnswer(WireCode.NO_ERROR, tx_id, 0).admitted


@given(st.sampled_from(list(WireCode)), st.binary(min_size=32, max_size=32),
       st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))  # fmt: skip
def test_roundtrip(code: WireCode, tx_id: bytes, credit: int, nonce: int) -> None:
    record = _doc_record(code, tx_id, credit, nonce)
    assert decode_answer(record) == SubmitAnswer(code, tx_id, credit, nonce)
    assert encode_answer(decode_answer(record)) == record


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (_doc_record(0, bytes(32), 1, 0)[:-1], WireCode.BAD_LENGTH),
        (_doc_record(0, bytes(32), 1, 0) + b"\x00", WireCode.BAD_LENGTH),
        (b"", WireCode.BAD_LENGTH),
        (_doc_record(0x99, bytes(32), 1, 0), WireCode.BAD_FIELD),  # not a WireCode
    ],
)
def test_strict_decoding(record: bytes, code: WireCode) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_answer(record)
    assert info.value.code is code
