"""Push streams: records as they complete, a block at FIN, bad bytes, timeouts, unwind."""

from __future__ import annotations

import pytest

from zapstack.bootstrap.events import TxGossiped, VoteReceived
from zapstack.bootstrap.pushes import PushStreams
from zapstack.bootstrap.readers import RangeRecord
from zapstack.bootstrap.wire import encode_vote
from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.transport.streams import StreamType
from zapstack.zap import Signer, SigScheme, build_block, build_transfer

P = b"peer"
ED = Signer(SigScheme.ED25519, bytes(range(32)))


def test_votes_come_out_as_each_is_whole_and_vote_streams_never_expire() -> None:
    pushes = PushStreams(push_timeout=10.0)
    data = encode_vote(b"v1") + encode_vote(b"v2")
    got, code = pushes.data(P, StreamType.VOTE, 3, data[:7], 0.0)
    assert (got, code) == ([VoteReceived(P, 3, b"v1")], None)
    got, code = pushes.data(P, StreamType.VOTE, 3, data[7:], 1.0)
    assert got == [VoteReceived(P, 3, b"v2")]
    assert pushes.next_deadline() is None and pushes.expired(1e9) == []
    assert pushes.end(P, 3) == (True, None)
    assert pushes.end(P, 3) == (False, None)


def test_bad_bytes_drop_the_stream_and_name_the_code() -> None:
    pushes = PushStreams(push_timeout=10.0)
    got, code = pushes.data(P, StreamType.MEMPOOL_GOSSIP, 5, b"nope", 0.0)
    assert got == [] and code is WireCode.BAD_MAGIC
    assert pushes.end(P, 5) == (False, None)
    got, code = pushes.data(P, StreamType.VOTE, 7, encode_vote(b"ok") + bytes(4), 0.0)
    assert got == [VoteReceived(P, 7, b"ok")] and code is WireCode.BAD_LENGTH


def test_timed_pushes_expire_and_unwind_is_idempotent() -> None:
    pushes = PushStreams(push_timeout=10.0)
    pushes.data(P, StreamType.BLOCK_PUSH, 1, b"\x7fZ", 0.0)
    pushes.data(P, StreamType.MEMPOOL_GOSSIP, 2, b"\x7f", 4.0)
    pushes.data(b"other", StreamType.VOTE, 9, b"\x00", 0.0)
    assert pushes.next_deadline() == 10.0
    assert pushes.expired(10.0) == [(P, 1)]
    assert pushes.drop_peer(P) == [2] and pushes.drop_peer(P) == []
    pushes.reset(b"other", 9)
    pushes.reset(b"other", 9)
    assert pushes.end(b"other", 9) == (False, None)


def test_a_block_push_yields_its_record_at_fin_only() -> None:
    block = build_block(
        ED, height=1, parent=bytes(32), timestamp_ms=1, state_root=bytes(32), txs=[]
    )
    pushes = PushStreams(push_timeout=10.0)
    assert pushes.data(P, StreamType.BLOCK_PUSH, 1, block + b"cert", 0.0) == ([], None)
    assert pushes.end(P, 1) == (True, RangeRecord(block, b"cert"))
    pushes.data(P, StreamType.BLOCK_PUSH, 2, block[:30], 0.0)
    with pytest.raises(RemoteProtocolError):
        pushes.end(P, 2)  # ended inside the block frame


def test_gossiped_txs_are_delimited_by_their_length() -> None:
    tx = build_transfer(ED, b"r" * 32, 1, 1, 0)
    pushes = PushStreams(push_timeout=10.0)
    got, code = pushes.data(P, StreamType.MEMPOOL_GOSSIP, 4, tx + tx[:10], 0.0)
    assert (got, code) == ([TxGossiped(P, tx)], None)
