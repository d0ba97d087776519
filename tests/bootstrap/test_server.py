"""BootstrapServer (bootstrap/server.py) answering STATE_CHUNK requests: the reply is the
requested chunks' records in order, each equal to the readable encoder over the readable
chunk builder (``encode_chunk_py`` of ``make_chunk`` on a pure-Python tree, not the
server's own path); a root it does not serve is refused with NOT_FOUND; a chunk too large
for one record, or chunks that pass the reply's bound together, are refused with INTERNAL
and never sent, the server's work stopping at the chunk that passes."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.bootstrap import BootstrapServer
from zapstack.bootstrap import server as servermod
from zapstack.bootstrap.wire import (
    MAX_CHUNK_RECORD,
    MAX_STATE_REPLY,
    RangeRequest,
    StateRequest,
    encode_chunk_py,
    encode_range_request,
    encode_state_request,
)
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode, ZapError
from zapstack.transport.events import Reject, Reply
from zapstack.transport.streams import StreamType
from zapstack.zapdb import ZapDB
from zapstack.zapdb.proofs import StateChunk, body_len, make_chunk
from zapstack.zapdb.smt import DictNodeStore, apply_updates_py
from zapstack.zapdb.view import ReadView


def _served(path: Path, state: dict[bytes, bytes]) -> tuple[ZapDB, BootstrapServer, bytes]:
    db = ZapDB.open(path)
    with db.begin() as txn:
        for key, value in state.items():
            txn.set(key, value)
        txn.commit()
    server = BootstrapServer(db)
    return db, server, server.pin()


def _ask(server: BootstrapServer, request: StateRequest) -> Reply | Reject:
    handler = server.handler(b"peer", StreamType.STATE_CHUNK)
    assert not handler.on_data(encode_state_request(request))
    (action,) = handler.on_end()
    assert isinstance(action, Reply | Reject)
    return action


@pytest.mark.parametrize(("depth", "start", "count"), [(0, 0, 1), (3, 0, 8), (5, 7, 20)])
def test_a_reply_is_the_requested_chunks_in_order(
    tmp_path: Path, depth: int, start: int, count: int
) -> None:
    state = {b"acct/%d" % i: b"v" * (i % 37) for i in range(300)}
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    db, server, pinned = _served(tmp_path / "db", state)
    try:
        assert pinned == root
        reply = _ask(server, StateRequest(root, depth, start, count))
        assert isinstance(reply, Reply) and reply.fin
        want = b"".join(
            encode_chunk_py(make_chunk(store, state.get, depth, i))
            for i in range(start, start + count)
        )
        assert reply.data == want
        assert server.chunks_served == count and server.bytes_served == len(want)
    finally:
        server.close()
        db.close()


def test_a_root_not_served_is_refused(tmp_path: Path) -> None:
    db, server, root = _served(tmp_path / "db", {b"k": b"v"})
    try:
        other = bytes(32) if root != bytes(32) else b"\x01" * 32
        action = _ask(server, StateRequest(other, 0, 0, 1))
        assert action == Reject(WireCode.NOT_FOUND)
    finally:
        server.close()
        db.close()


def test_a_chunk_too_large_for_one_record_is_refused_not_sent(tmp_path: Path) -> None:
    big = 1 << 20
    state = {b"blob/%d" % i: bytes([i]) * big for i in range(17)}  # 17 MiB > 2**24 bytes
    db, server, root = _served(tmp_path / "db", state)
    try:
        handler = server.handler(b"peer", StreamType.STATE_CHUNK)
        handler.on_data(encode_state_request(StateRequest(root, 0, 0, 1)))
        with pytest.raises(LocalProtocolError) as info:
            handler.on_end()  # the transport turns any ZapError into Reject(code)
        assert isinstance(info.value, ZapError) and info.value.code is WireCode.INTERNAL
        assert "depth 0" in str(info.value) and "greater depth" in str(info.value)
        assert server.chunks_served == 0
        handler = server.handler(b"peer", StreamType.STATE_CHUNK)
        handler.on_data(encode_state_request(StateRequest(root, 2, 0, 4)))
        with pytest.raises(LocalProtocolError) as info:  # each fits, together they pass
            handler.on_end()
        assert info.value.code is WireCode.INTERNAL and "fewer chunks" in str(info.value)
        assert MAX_STATE_REPLY <= MAX_CHUNK_RECORD and server.chunks_served == 0
        sizes = []
        for i in range(4):  # deeper and one at a time: each chunk is served
            reply = _ask(server, StateRequest(root, 2, i, 1))
            assert isinstance(reply, Reply)
            sizes.append(len(reply.data) - 4)
        assert sum(sizes) > MAX_STATE_REPLY and max(sizes) <= MAX_CHUNK_RECORD
    finally:
        server.close()
        db.close()


def test_a_reply_stops_at_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the reply's bound made small: a request is served exactly when its chunks'
    bodies add up to at most the bound (replies equal to the readable encoder's), and a
    refused one builds no chunk past the one that passed."""
    state = {b"acct/%d" % i: b"v" * (i % 37) for i in range(300)}
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    bodies = [body_len(make_chunk(store, state.get, 4, i)) for i in range(16)]
    db, server, _ = _served(tmp_path / "db", state)
    built: list[int] = []
    real = ReadView.chunk

    def counted(view: ReadView, depth: int, index: int, limit: int | None = None) -> StateChunk:
        built.append(index)
        return real(view, depth, index, limit)

    monkeypatch.setattr(ReadView, "chunk", counted)
    try:
        for bound in (bodies[0] - 1, bodies[0], sum(bodies[:5]), sum(bodies[:5]) - 1):
            monkeypatch.setattr(servermod, "MAX_STATE_REPLY", bound)
            for count in (1, 5, 16):
                built.clear()
                request = encode_state_request(StateRequest(root, 4, 0, count))
                if sum(bodies[:count]) <= bound:
                    want = b"".join(
                        encode_chunk_py(make_chunk(store, state.get, 4, i)) for i in range(count)
                    )
                    assert server.answer_state(request) == want
                    continue
                with pytest.raises(LocalProtocolError) as info:
                    server.answer_state(request)
                assert info.value.code is WireCode.INTERNAL
                passed = next(i for i in range(count) if sum(bodies[: i + 1]) > bound)
                assert built == list(range(passed + 1))
    finally:
        server.close()
        db.close()


@pytest.mark.parametrize("bound", [1, 212, 213, 525, 526, 1451, 1452, 1 << 24])
def test_a_range_reply_ends_before_the_record_that_passes_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: int
) -> None:
    """HEADER_RANGE: records are sent while they add up to at most the bound, the first
    one always (bootstrap.md §3); the reply is the head, then those records, whole."""
    monkeypatch.setattr(servermod, "MAX_RANGE_REPLY", bound)
    blocks = {h: (bytes([h]) * 100 * h, b"cert%d" % h) for h in range(1, 6)}
    db = ZapDB.open(tmp_path / "db")
    server = BootstrapServer(db, blocks=blocks, head=5)
    try:
        records = [
            struct.pack("<I", len(b)) + b + struct.pack("<I", len(c)) + c
            for b, c in (blocks[h] for h in range(2, 6))
        ]
        sizes = list(itertools.accumulate(map(len, records)))
        fits = max(1, sum(1 for total in sizes if total <= bound))
        reply = server.answer_range(b"peer", encode_range_request(RangeRequest(0, 2, 4)))
        assert reply == (5).to_bytes(8, "little") + b"".join(records[:fits])
    finally:
        server.close()
        db.close()


class CountedBlocks(MutableMapping[int, tuple[bytes, bytes]]):
    """Blocks as a node holds them (a mapping whose every lookup reads a file), counting
    the lookups."""

    def __init__(self, blocks: dict[int, tuple[bytes, bytes]]) -> None:
        self.blocks, self.reads = blocks, 0

    def __getitem__(self, height: int) -> tuple[bytes, bytes]:
        self.reads += 1
        return self.blocks[height]

    def __contains__(self, height: object) -> bool:
        self.reads += 1  # StoreBlocks reads (and checksums) the whole file to answer
        return height in self.blocks

    def __setitem__(self, height: int, value: tuple[bytes, bytes]) -> None:
        self.blocks[height] = value

    def __delitem__(self, height: int) -> None:
        del self.blocks[height]

    def __iter__(self) -> Iterator[int]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)


def test_a_range_reply_reads_each_block_once(tmp_path: Path) -> None:
    """HEADER_RANGE of heights 3..9 from a server holding 3..6: four reads for the four
    records, one more to find 7 missing (a block file was read twice per record before:
    a 16.7 MB reply of 64 KiB blocks took 45 ms of the event loop, now 23 ms)."""
    blocks = CountedBlocks({h: (b"block%d" % h, b"cert%d" % h) for h in range(3, 7)})
    db = ZapDB.open(tmp_path / "db")
    server = BootstrapServer(db, blocks=blocks, head=9)
    try:
        reply = server.answer_range(b"peer", encode_range_request(RangeRequest(0, 3, 7)))
        assert reply.count(b"cert") == 4 and blocks.reads == 5
    finally:
        server.close()
        db.close()


def test_roots_peers_pull_are_kept_past_keep_roots_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keep_roots = 2: a root falls out at the pin that leaves two newer ones, unless a
    STATE_CHUNK request for it was served since the previous pin; then it is kept, for at
    most ``hold_pins`` pins counted from that one, and at most KEEP_PULLED such roots (the
    newest of them)."""
    monkeypatch.setattr(servermod, "KEEP_PULLED", 2)
    db = ZapDB.open(tmp_path / "db")
    server = BootstrapServer(db, keep_roots=2, hold_pins=3)
    r: list[bytes] = []

    def block(*pulled: int) -> tuple[bytes, ...]:
        """Serve a request for each of ``pulled``, then pin a new state (a new block)."""
        for i in pulled:
            server.answer_state(encode_state_request(StateRequest(r[i], 1, 0, 2)))
        with db.begin() as txn:
            txn.set(b"k%d" % len(r), b"v")
            txn.commit()
        r.append(server.pin())
        return server.roots

    try:
        block()
        block(0)
        assert block(0) == (r[0], r[1], r[2])  # r0 fell out at pin 3, pulled: kept
        assert block(0) == (r[0], r[2], r[3])  # r1 was not pulled: gone at once
        assert block(0) == (r[0], r[3], r[4])
        assert block(0) == (r[4], r[5])  # r0 kept for pins 3, 4, 5: hold_pins, released
        with pytest.raises(RemoteProtocolError) as err:
            block(0)
        assert err.value.code is WireCode.NOT_FOUND
        assert server.roots == (r[4], r[5])
        assert block(4) == (r[4], r[5], r[6])
        assert block(4, 5) == (r[4], r[5], r[6], r[7])
        assert block(4, 5, 6) == (r[5], r[6], r[7], r[8])  # three pulled: the newest two kept
        assert block() == (r[8], r[9])
    finally:
        server.close()
        db.close()


def test_request_entries_estimates_the_entries_a_request_reads(tmp_path: Path) -> None:
    state = {b"acct/%d" % i: b"v" for i in range(1000)}
    db, server, root = _served(tmp_path / "db", state)
    try:
        with db.read() as view:
            n = view.entries()
        assert n == len(state)  # the data database holds the state entries only
        for depth, count in ((0, 1), (3, 2), (10, 1024), (10, 1)):
            data = encode_state_request(StateRequest(root, depth, 0, count))
            assert server.request_entries(data) == n * count >> depth
        assert server.request_entries(b"short") == 0  # refused at once: no work to estimate
        other = encode_state_request(StateRequest(b"\x07" * 32, 0, 0, 1))
        assert server.request_entries(other) == 0
    finally:
        server.close()
        db.close()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)), max_size=8),
    st.integers(0, 24),
    st.one_of(st.none(), st.binary(min_size=64, max_size=64)),
)
def test_body_len_is_the_readable_encoders_body(
    entries: list[tuple[bytes, bytes]], sibs: int, terminal: bytes | None
) -> None:
    """proofs.body_len == the body bytes encode_chunk_py writes (bootstrap.md §2), with and
    without a terminal (64 bytes: kh || vh)."""
    chunk = StateChunk(24, 5, tuple(entries), tuple(bytes([i]) * 32 for i in range(sibs)), terminal)
    assert body_len(chunk) == len(encode_chunk_py(chunk)) - 4


def test_a_reply_being_built_survives_its_view_being_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply built on a worker (node/stateserve.py) while the loop re-pins the same root,
    then pins newer ones until that root falls out: the reply holds its own reference to
    the snapshot and comes out whole, as it would have before."""
    state = {b"acct/%d" % i: b"v" * (i % 37) for i in range(300)}
    db, server, root = _served(tmp_path / "db", state)
    request = encode_state_request(StateRequest(root, 3, 0, 8))
    want = server.answer_state(request)
    real = ReadView.chunk
    calls = [0]

    def chunk(view: ReadView, depth: int, index: int, limit: int | None = None) -> StateChunk:
        calls[0] += 1
        if calls[0] == 2:  # mid-build: the same root again, then newer roots push it out
            with db.begin() as txn:
                txn.meta_set(b"height", b"1")
                txn.commit()
            assert server.pin() == root
            for i in range(server.keep_roots):
                with db.begin() as txn:
                    txn.set(b"new/%d" % i, b"x")
                    txn.commit()
                server.pin()
            assert root not in server.roots
        return real(view, depth, index, limit)

    monkeypatch.setattr(ReadView, "chunk", chunk)
    try:
        assert server.answer_state(request) == want
        assert db.snapshot_refs() == server.keep_roots  # the reply's reference is gone
    finally:
        server.close()
        db.close()
