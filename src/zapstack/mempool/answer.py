"""The answer to a TX_SUBMIT stream: admitted or rejected, with a code and credit.

Contract
--------
TX_SUBMIT (0xD1) is a bidirectional request stream (docs/formats/streams.md
§TX_SUBMIT answer): the submitter writes one tx ZAP frame and FIN; the node
answers on the same stream with exactly one record, then FIN:

======  ====  ==============================================================
offset  size  field
======  ====  ==============================================================
0       1     ``code``: ``0x00`` (NO_ERROR) = admitted; any other WireCode =
              rejected with that code (stage 5: DUPLICATE, FEE_TOO_LOW,
              MEMPOOL_FULL, NONCE_TOO_LOW, BAD_NONCE, INSUFFICIENT_BALANCE,
              RATE_LIMITED; a deferred signature check: BAD_SIGNATURE)
1       32    ``tx_id`` of the submitted frame
33      4     ``credit``, u32 little-endian: how many more submissions the
              node invites now (0: wait before the next one)
37      8     ``account_nonce``, u64 little-endian: the sender's committed
              account nonce as the node sees it (a client whose nonce fell
              out of the pool's window resynchronises from it)
======  ====  ==============================================================

A frame refused at stages 1-4 (it is not a tx) gets no record: the node
resets both halves of the stream with the stage's code (``RESET_STREAM`` /
``STOP_SENDING``), which is the answer.  :func:`decode_answer` is strict
(exactly 45 bytes, a code in the WireCode table).  Sans-IO; no state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zapstack.errors import RemoteProtocolError, WireCode

__all__ = ["ANSWER_SIZE", "SubmitAnswer", "decode_answer", "encode_answer"]

_ANSWER = struct.Struct("<B32sIQ")
ANSWER_SIZE = _ANSWER.size
"""Bytes of one answer record (45)."""


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """The node's verdict on one submitted tx."""

    code: WireCode
    """``NO_ERROR`` when admitted, else the reject code."""
    tx_id: bytes
    """The tx's id (32 bytes)."""
    credit: int
    """Further submissions the node invites now (0 = back off)."""
    account_nonce: int = 0
    """The sender's committed account nonce (0 when the answer was a reset)."""

    @property
    def admitted(self) -> bool:
        """Whether the tx entered the node's mempool."""
        return self.code is WireCode.NO_ERROR


def encode_answer(answer: SubmitAnswer) -> bytes:
    """The 37-byte record of ``answer``."""
    credit = min(answer.credit, 0xFFFFFFFF)
    return _ANSWER.pack(int(answer.code), answer.tx_id, credit, answer.account_nonce)


def decode_answer(data: bytes) -> SubmitAnswer:
    """Parse one record; raises ``RemoteProtocolError`` (``BAD_LENGTH`` / ``BAD_FIELD``)."""
    if len(data) != ANSWER_SIZE:
        raise RemoteProtocolError(
            f"answer of {len(data)} bytes, expected {ANSWER_SIZE}", code=WireCode.BAD_LENGTH
        )
    code, tx_id, credit, account_nonce = _ANSWER.unpack(data)
    try:
        wire = WireCode(code)
    except ValueError:
        raise RemoteProtocolError(f"answer code {code:#x}", code=WireCode.BAD_FIELD) from None
    return SubmitAnswer(wire, tx_id, credit, account_nonce)
