"""ChunkPull: verified parallel pull, adversaries, disconnects, timeouts, lying headers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from zapstack.dht import messages, wire
from zapstack.dht.blocks import synthetic_layout
from zapstack.dht.chunk_actions import (
    HEADER_REQ,
    CancelRequest,
    PullComplete,
    RequestChunk,
    RequestHeader,
    Stalled,
)
from zapstack.dht.chunks import ChunkPull
from zapstack.errors import LocalProtocolError, WireCode

from .conftest import BID, BLOCK, HLEN, SERVED

# A server behaviour maps a request (index, HEADER_REQ for the header) to the
# response bytes, a reset code, or None (silence).
Behaviour = Callable[[int], bytes | WireCode | None]


def honest(index: int) -> bytes:
    msg = SERVED.header_msg() if index == HEADER_REQ else SERVED.chunk_msg(index)
    return wire.encode(msg)


def flipping(index: int) -> bytes:
    if index == HEADER_REQ:
        return honest(index)
    m = SERVED.chunk_msg(index)
    data = bytes([m.data[0] ^ 1]) + m.data[1:]
    return wire.encode(messages.ChunkMsg(m.block_id, m.index, data, m.proof))


def lying_header(offset: int) -> Behaviour:
    def serve(index: int) -> bytes:
        if index != HEADER_REQ:
            return honest(index)
        h = bytearray(BLOCK[:HLEN])
        h[offset] ^= 1
        return wire.encode(messages.HeaderMsg(BID, bytes(h), b""))

    return serve


def drive(
    pull: ChunkPull, servers: dict[str, Behaviour], now: float = 0.0, bytewise: bool = False
) -> list[object]:
    """Answer every request at once; return every action seen."""
    seen: list[object] = []
    while (a := pull.next_action()) is not None:
        seen.append(a)
        if not isinstance(a, RequestHeader | RequestChunk):
            continue
        index = a.index if isinstance(a, RequestChunk) else HEADER_REQ
        reply = servers[a.peer](index)
        if isinstance(reply, WireCode):
            pull.stream_reset(a.peer, index, reply, now)
        elif reply is not None:
            pieces = [reply[i : i + 1] for i in range(len(reply))] if bytewise else [reply]
            for p in pieces:
                pull.receive_data(a.peer, index, p, now)
            pull.stream_ended(a.peer, index, now)
    return seen


def test_parallel_pull_spreads_over_providers_and_completes() -> None:
    pull = ChunkPull(BID, ["a", "b", "c"], layout=synthetic_layout, now=0.0)
    seen = drive(pull, {"a": honest, "b": honest, "c": honest})
    assert pull.done and pull.result == BLOCK
    assert hashlib.sha256(pull.result).digest() == BID
    asked = {a.peer for a in seen if isinstance(a, RequestChunk)}
    assert asked == {"a", "b", "c"}
    assert isinstance(seen[-1], PullComplete) and pull.blamed == frozenset()


def test_bytewise_delivery_gives_the_same_block() -> None:
    pull = ChunkPull(BID, ["a", "b"], layout=synthetic_layout, now=0.0)
    drive(pull, {"a": honest, "b": honest}, bytewise=True)
    assert pull.result == BLOCK


def test_bogus_chunks_are_blamed_and_refetched_elsewhere() -> None:
    pull = ChunkPull(BID, ["bad", "good"], layout=synthetic_layout, now=0.0)
    seen = drive(pull, {"bad": flipping, "good": honest})
    assert pull.result == BLOCK
    assert pull.blamed == {"bad"}
    assert any(isinstance(a, CancelRequest) and a.code is WireCode.BAD_CHUNK for a in seen)
    after_blame = seen[next(i for i, a in enumerate(seen) if isinstance(a, CancelRequest)) :]
    assert not any(isinstance(a, RequestChunk) and a.peer == "bad" for a in after_blame)


def test_garbage_bytes_blame_definitively() -> None:
    def garbage(index: int) -> bytes:
        return honest(index) if index == HEADER_REQ else b"\x09\x88\x00\x00\x00\x00"

    pull = ChunkPull(BID, ["g", "ok"], layout=synthetic_layout, now=0.0)
    seen = drive(pull, {"g": garbage, "ok": honest})
    assert pull.result == BLOCK and pull.blamed == {"g"}
    assert any(isinstance(a, CancelRequest) and a.code is WireCode.BAD_VERSION for a in seen)


def test_disconnect_mid_stream_drops_partial_and_rerequests() -> None:
    pull = ChunkPull(BID, ["a", "b"], layout=synthetic_layout, now=0.0, header=BLOCK[:HLEN])
    first = [pull.next_action() for _ in range(8)]
    to_a = [a for a in first if isinstance(a, RequestChunk) and a.peer == "a"]
    assert to_a
    half = honest(to_a[0].index)[:30000]
    pull.receive_data("a", to_a[0].index, half, 0.0)
    assert pull.partial_bytes("a") == 30000
    pull.peer_disconnected("a", 0.1)
    pull.peer_disconnected("a", 0.1)  # idempotent
    assert pull.partial_bytes("a") == 0 and pull.dropped_bytes == 30000
    for a in first:  # b answers what it was asked
        if isinstance(a, RequestChunk) and a.peer == "b":
            pull.receive_data("b", a.index, honest(a.index), 0.2)
    drive(pull, {"b": honest}, now=0.3)
    assert pull.result == BLOCK and pull.blamed == frozenset()


def test_timeouts_cancel_and_reissue() -> None:
    pull = ChunkPull(BID, ["slow", "fast"], layout=synthetic_layout, now=0.0, header=BLOCK[:HLEN])
    seen = drive(pull, {"slow": lambda i: None, "fast": honest})
    assert not pull.done and pull.next_deadline() == 5.0
    pull.handle_timer(4.9)
    assert pull.next_action() is None
    pull.handle_timer(5.0)
    seen = drive(pull, {"slow": lambda i: None, "fast": honest}, now=5.0)
    cancels = [a for a in seen if isinstance(a, CancelRequest)]
    assert cancels and all(c.peer == "slow" and c.code is WireCode.TIMEOUT for c in cancels)
    assert pull.result == BLOCK and pull.blamed == frozenset()


def test_not_found_removes_provider_and_stall_is_reported() -> None:
    pull = ChunkPull(BID, ["none"], layout=synthetic_layout, now=0.0)
    seen = drive(pull, {"none": lambda i: WireCode.NOT_FOUND})
    assert isinstance(seen[-1], Stalled) and seen[-1].missing == ()
    pull.add_providers(["late"], 1.0)
    drive(pull, {"late": honest}, now=1.0)
    assert pull.result == BLOCK


def test_header_with_lying_filler_is_blamed_after_the_hash_check() -> None:
    pull = ChunkPull(BID, ["liar", "b"], layout=synthetic_layout, now=0.0)
    drive(pull, {"liar": lying_header(60), "b": honest})
    assert pull.result == BLOCK
    assert pull.blamed == {"liar"}


def test_header_with_lying_root_is_suspected_and_honest_peers_not_blamed() -> None:
    pull = ChunkPull(BID, ["liar", "b", "c"], layout=synthetic_layout, now=0.0)
    drive(pull, {"liar": lying_header(20), "b": honest, "c": honest})
    assert pull.result == BLOCK
    assert "b" not in pull.blamed and "c" not in pull.blamed


def test_trusted_header_that_is_wrong_stalls_and_bad_trusted_header_raises() -> None:
    h = bytearray(BLOCK[:HLEN])
    h[70] ^= 1
    pull = ChunkPull(BID, ["a"], layout=synthetic_layout, now=0.0, header=bytes(h))
    seen = drive(pull, {"a": honest})
    assert not pull.done and isinstance(seen[-1], Stalled)
    with pytest.raises(LocalProtocolError):
        ChunkPull(BID, ["a"], layout=synthetic_layout, now=0.0, header=b"nope" * 20)


def test_oversize_layout_is_refused() -> None:
    pull = ChunkPull(BID, ["a", "b"], layout=synthetic_layout, now=0.0, max_block_bytes=1000)
    seen = drive(pull, {"a": honest, "b": honest})
    assert pull.blamed == {"a", "b"} and isinstance(seen[-1], Stalled)
