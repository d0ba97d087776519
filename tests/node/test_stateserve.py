"""StateServing: STATE_CHUNK requests answered on a worker thread, the reply delivered to
the stream's connection on the loop; per-peer and total bounds refuse at once; a released
root is NOT_FOUND, a server refusal its own code; a request estimated small is answered
on the loop at once; without a responder the server's own synchronous handler answers.
HEADER_RANGE the same way (subscriptions taken on the loop at FIN)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from zapstack.bootstrap import BootstrapServer
from zapstack.bootstrap.wire import (
    SUB_VOTES,
    RangeRequest,
    StateRequest,
    encode_range_request,
    encode_state_request,
)
from zapstack.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    StoreError,
    WireCode,
    ZapError,
)
from zapstack.node.stateserve import INLINE_BLOCKS, StateServing
from zapstack.transport.events import Reject, Reply
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.streams import StreamType, spec_of
from zapstack.zapdb import ZapDB

T = TypeVar("T")


class Conn:
    """A connection that records what the handlers answer later, and wakes a waiter."""

    def __init__(self) -> None:
        self.answers: dict[int, tuple[str, object]] = {}
        self.changed = asyncio.Event()

    def reply(self, stream_id: int, data: bytes) -> None:
        self.answers[stream_id] = ("reply", data)
        self.changed.set()

    def refuse(self, stream_id: int, code: int) -> None:
        self.answers[stream_id] = ("refuse", code)
        self.changed.set()

    async def wait(self, n: int) -> None:
        while len(self.answers) < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


def _info(
    peer: bytes, stream_id: int, conn: Conn | None, st: StreamType = StreamType.STATE_CHUNK
) -> StreamInfo:
    """A request stream ``peer`` opened (not local)."""
    spec = spec_of(st)
    assert spec is not None
    return StreamInfo(stream_id, st, spec, False, peer, conn)


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = ZapDB.open(tmp_path / "db")
    with db.begin() as txn:
        for i in range(300):
            txn.set(b"acct/%d" % i, b"v" * (i % 40))
        txn.commit()
    server = BootstrapServer(db)
    root = server.pin()
    yield server, root
    server.close()
    db.close()


def _run(serving: StateServing, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``main()`` on a fresh loop, the worker stopped after."""
    try:
        return asyncio.run(main())
    finally:
        serving.close()


def _ask(
    serving: StateServing,
    peer: bytes,
    sid: int,
    conn: Conn,
    data: bytes,
    st: StreamType = StreamType.STATE_CHUNK,
) -> object:
    handler = serving.handler(_info(peer, sid, conn, st))
    assert handler.on_data(data) == NO_ACTIONS
    return handler.on_end()


def test_requests_are_answered_on_the_worker_and_delivered_later(served) -> None:  # type: ignore[no-untyped-def]
    server, root = served
    requests = [encode_state_request(StateRequest(root, 3, s, 2)) for s in (0, 2, 4)]
    want = [server.answer_state(r) for r in requests]
    serving = StateServing(server, inline=-1)  # every request to the worker

    async def main() -> Conn:
        conn = Conn()
        worker_free = threading.Event()
        serving._pool.submit(worker_free.wait)  # the worker is busy: nothing answered yet
        for sid, data in enumerate(requests):
            assert _ask(serving, b"p", 4 * sid, conn, data) == NO_ACTIONS
        await asyncio.sleep(0.01)
        assert conn.answers == {}  # on_end returned at once; the work waits for the worker
        worker_free.set()
        await conn.wait(3)
        return conn

    conn = _run(serving, main)
    assert conn.answers == {4 * i: ("reply", want[i]) for i in range(3)}
    assert serving.queue.open() == 0


def test_bounds_refuse_at_once_and_errors_are_refusals(served) -> None:  # type: ignore[no-untyped-def]
    server, root = served
    ok = encode_state_request(StateRequest(root, 2, 0, 1))
    serving = StateServing(server, per_peer=2, total=3, inline=-1)

    async def main() -> Conn:
        conn = Conn()
        worker_free = threading.Event()
        serving._pool.submit(worker_free.wait)
        assert _ask(serving, b"a", 0, conn, ok) == NO_ACTIONS
        assert _ask(serving, b"a", 4, conn, ok) == NO_ACTIONS
        assert _ask(serving, b"a", 8, conn, ok) == (Reject(WireCode.RATE_LIMITED),)  # per peer
        assert _ask(serving, b"b", 20, conn, ok) == NO_ACTIONS
        assert _ask(serving, b"b", 28, conn, ok) == (Reject(WireCode.RATE_LIMITED),)  # total
        # total, but a holds two more than c and has one queued: a's newest goes instead
        assert _ask(serving, b"c", 24, conn, ok) == NO_ACTIONS
        assert conn.answers == {4: ("refuse", WireCode.RATE_LIMITED)}
        unknown = encode_state_request(StateRequest(b"\x07" * 32, 2, 0, 1))
        worker_free.set()
        await conn.wait(4)
        assert serving.refused == 3 and serving.queue.open() == 0
        assert {k: v[0] for k, v in conn.answers.items()} == {
            0: "reply",
            4: "refuse",
            20: "reply",
            24: "reply",
        }
        conn.answers.clear()
        assert _ask(serving, b"c", 12, conn, unknown) == NO_ACTIONS
        await conn.wait(1)
        worker_free.clear()
        serving._pool.submit(worker_free.wait)
        assert _ask(serving, b"c", 16, conn, ok) == NO_ACTIONS
        server.close()  # the root is released before the worker gets to it
        worker_free.set()
        await conn.wait(2)
        return conn

    conn = _run(serving, main)
    assert conn.answers == {
        12: ("refuse", WireCode.NOT_FOUND),  # a root never served (RemoteProtocolError)
        16: ("refuse", WireCode.NOT_FOUND),  # a root released meanwhile
    }


def test_a_long_request_and_no_responder(served) -> None:  # type: ignore[no-untyped-def]
    server, root = served
    serving = StateServing(server, inline=-1)
    try:
        handler = serving.handler(_info(b"p", 0, Conn()))
        assert handler.on_data(b"x" * 65) == (Reject(WireCode.TRAILING_DATA),)
        sync = serving.handler(_info(b"p", 4, None))  # no adapter: the server's own handler
        sync.on_data(encode_state_request(StateRequest(root, 1, 0, 2)))
        (reply,) = sync.on_end()
        assert reply.data == server.answer_state(  # type: ignore[attr-defined]
            encode_state_request(StateRequest(root, 1, 0, 2))
        )
    finally:
        serving.close()
        serving.close()  # idempotent


def test_a_request_estimated_small_is_answered_at_once_on_the_loop(served) -> None:  # type: ignore[no-untyped-def]
    server, root = served
    whole = encode_state_request(StateRequest(root, 0, 0, 1))  # ~300 entries
    part = encode_state_request(StateRequest(root, 3, 0, 2))  # ~75
    with server.db.read() as view:
        assert server.request_entries(whole) == view.entries() >= 300
    assert server.request_entries(part) == server.request_entries(whole) * 2 >> 3
    serving = StateServing(server, inline=100)

    async def main() -> tuple[object, object, Conn]:
        conn = Conn()
        small = _ask(serving, b"p", 0, conn, part)  # the Reply itself, from on_end
        large = _ask(serving, b"p", 4, conn, whole)  # to the worker
        await conn.wait(1)
        return small, large, conn

    small, large, conn = _run(serving, main)
    assert small == (Reply(server.answer_state(part), fin=True),)
    assert large == NO_ACTIONS and conn.answers == {4: ("reply", server.answer_state(whole))}
    assert server.request_entries(b"bad") == 0
    assert server.request_entries(encode_state_request(StateRequest(b"\x07" * 32, 0, 0, 1))) == 0


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StoreError("store closed"), WireCode.NOT_FOUND),  # the node is going down
        (LocalProtocolError("chunk 3 is over its bound"), WireCode.INTERNAL),
        (
            RemoteProtocolError("bad", code=WireCode.STREAM_PROTOCOL_VIOLATION),
            WireCode.STREAM_PROTOCOL_VIOLATION,
        ),
    ],
)
def test_an_answer_at_once_fails_as_one_on_the_worker_would(  # type: ignore[no-untyped-def]
    served, monkeypatch: pytest.MonkeyPatch, error: ZapError, code: WireCode
) -> None:
    server, root = served
    small = encode_state_request(StateRequest(root, 3, 0, 1))
    serving = StateServing(server)  # ~40 entries: answered at once

    def failing(data: bytes) -> bytes:
        raise error

    monkeypatch.setattr(server, "answer_state", failing)

    async def main() -> object:
        return _ask(serving, b"p", 0, Conn(), small)

    assert _run(serving, main) == (Reject(code),)


def test_a_validator_is_served_when_many_identities_fill_the_queue(served) -> None:  # type: ignore[no-untyped-def]
    server, root = served
    ok = encode_state_request(StateRequest(root, 2, 0, 1))
    serving = StateServing(server, per_peer=2, total=3, inline=-1, priority={b"V"})

    async def main() -> tuple[list[object], Conn]:
        conn = Conn()
        worker_free = threading.Event()
        serving._pool.submit(worker_free.wait)
        got = [_ask(serving, b"bot%d" % i, 4 * i, conn, ok) for i in range(4)]
        got.append(_ask(serving, b"V", 40, conn, ok))  # full: V evicts a queued bot's
        worker_free.set()
        await conn.wait(4)
        return got, conn

    got, conn = _run(serving, main)
    assert got == [NO_ACTIONS] * 3 + [(Reject(WireCode.RATE_LIMITED),), NO_ACTIONS]
    # bot0's went to the worker at once; of the queued, bot1's (earliest in turn) made room
    assert conn.answers[4] == ("refuse", WireCode.RATE_LIMITED)
    assert conn.answers[40] == ("reply", server.answer_state(ok))
    assert conn.answers[0] == conn.answers[8] == ("reply", server.answer_state(ok))


def test_identities_at_one_host_share_one_peers_bounds(served) -> None:  # type: ignore[no-untyped-def]
    """Requests count against the sender's host, not its identity (free to make), except a
    fellow validator's (its node id) and where no adapter says the host (its node id)."""
    server, root = served
    ok = encode_state_request(StateRequest(root, 2, 0, 1))
    serving = StateServing(server, per_peer=2, total=32, inline=-1, priority={b"V"})
    info = _info(b"bot1", 0, None)
    assert serving.key(info) == b"bot1"  # no host known
    assert serving.key(replace(info, host="10.0.0.7")) == b"@10.0.0.7"
    assert serving.key(replace(info, peer=b"V", host="10.0.0.7")) == b"V"
    assert serving.key(replace(info, host="2001:db8::5")) == b"@2001:db8::/64"

    async def main() -> list[object]:
        conn = Conn()
        worker_free = threading.Event()
        serving._pool.submit(worker_free.wait)
        got = []
        senders = [
            (b"bot1", "10.0.0.7"),
            (b"bot2", "10.0.0.7"),
            (b"bot3", "10.0.0.7"),  # the host's third: past per_peer
            (b"V", "10.0.0.7"),  # a validator at that address counts on its own
            (b"other", "10.0.0.8"),
        ]
        for sid, (peer, host) in enumerate(senders):
            handler = serving.handler(replace(_info(peer, 4 * sid, conn), host=host))
            handler.on_data(ok)
            got.append(handler.on_end())
        worker_free.set()
        await conn.wait(4)
        return got

    got = _run(serving, main)
    refused = (Reject(WireCode.RATE_LIMITED),)
    assert got == [NO_ACTIONS, NO_ACTIONS, refused, NO_ACTIONS, NO_ACTIONS]


def test_close_waits_for_the_answer_being_built(served) -> None:  # type: ignore[no-untyped-def]
    server, root = served
    serving = StateServing(server, inline=-1)
    started, done = threading.Event(), threading.Event()
    real = server.answer_state

    def slow(data: bytes) -> bytes:
        started.set()
        time.sleep(0.2)
        out = real(data)
        done.set()
        return out

    server.answer_state = slow  # type: ignore[method-assign]

    async def main() -> None:
        data = encode_state_request(StateRequest(root, 2, 0, 1))
        assert _ask(serving, b"p", 0, Conn(), data) == NO_ACTIONS
        assert _ask(serving, b"p", 4, Conn(), data) == NO_ACTIONS  # queued: dropped at close
        assert await asyncio.to_thread(started.wait, 10)
        serving.close()
        assert done.is_set()  # the running answer finished before close returned
        # a request that comes in after close: refused, not handed to a stopped worker
        assert _ask(serving, b"q", 8, Conn(), data) == (Reject(WireCode.RATE_LIMITED),)

    asyncio.run(main())
    serving.close()  # idempotent


def _range_reply(head: int, blocks: dict[int, tuple[bytes, bytes]], heights: range) -> bytes:
    """bootstrap.md §3, written out: head u64 LE, then (u32 len, block, u32 len, cert)."""
    out = head.to_bytes(8, "little")
    for h in heights:
        block, cert = blocks[h]
        out += len(block).to_bytes(4, "little") + block + len(cert).to_bytes(4, "little") + cert
    return out


def test_header_ranges_large_on_the_worker_small_at_once(tmp_path: Path) -> None:
    """HEADER_RANGE: the subscription is taken at FIN on the loop either way; more than
    INLINE_BLOCKS blocks are read on the worker and delivered later, fewer answered at
    once; a request that does not parse is refused at FIN; the bounds count both kinds."""
    blocks = {h: (b"block-%d" % h * 50, b"cert-%d" % h) for h in range(1, 41)}
    db = ZapDB.open(tmp_path / "db")
    server = BootstrapServer(db, blocks=blocks, head=40)
    root = server.pin()
    serving = StateServing(server, per_peer=2, inline=-1)
    big = encode_range_request(RangeRequest(SUB_VOTES, 1, 40))
    small = encode_range_request(RangeRequest(0, 38, INLINE_BLOCKS))

    def ask(peer: bytes, sid: int, conn: Conn, data: bytes) -> object:
        return _ask(serving, peer, sid, conn, data, StreamType.HEADER_RANGE)

    async def main() -> tuple[Conn, list[object]]:
        conn = Conn()
        worker_free = threading.Event()
        serving._pool.submit(worker_free.wait)  # nothing answered on the worker yet
        got = [ask(b"p", 0, conn, big)]
        server.publish_vote(b"vote")  # p subscribed at FIN, though its reply waits
        assert server.next_push(b"p") is not None and conn.answers == {}
        got.append(ask(b"p", 4, conn, small))  # answered here and now
        got.append(ask(b"p", 8, conn, b"\x01" * 3))  # too short to parse: refused at FIN
        state = encode_state_request(StateRequest(root, 2, 0, 1))
        assert _ask(serving, b"p", 12, conn, state) == NO_ACTIONS  # p's second deferred
        got.append(ask(b"p", 16, conn, big))  # a third: over per_peer (both kinds)
        worker_free.set()
        await conn.wait(2)
        return conn, got

    try:
        conn, got = _run(serving, main)
        assert got[0] == NO_ACTIONS
        assert got[1] == (Reply(_range_reply(40, blocks, range(38, 41)), fin=True),)
        assert got[2] == (Reject(WireCode.TRUNCATED),)
        assert got[3] == (Reject(WireCode.RATE_LIMITED),)
        assert conn.answers[0] == ("reply", _range_reply(40, blocks, range(1, 41)))
        assert conn.answers[12][0] == "reply" and serving.queue.open() == 0
    finally:
        server.close()
        db.close()
