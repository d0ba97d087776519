"""Bootstrap client over in-memory session pairs: stall recovery, sync, follow, blame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from zapstack.bootstrap import (
    BlockApplied,
    BootstrapClient,
    BootstrapConfig,
    BootstrapServer,
    ExecutorApplier,
    PeerBlamed,
    StateSynced,
    StreamStalled,
    TargetChosen,
    TxGossiped,
    VoteReceived,
)
from zapstack.bootstrap import server as servermod
from zapstack.bootstrap.devchain import USERS, Chain, cert_ok
from zapstack.bootstrap.wire import StateRequest, encode_state_request
from zapstack.errors import WireCode
from zapstack.testing.loopnet import LoopNet
from zapstack.transport.events import End, HandlerAction, Reject, Reply, StreamEnded
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.streams import StreamType
from zapstack.verify import BlockExecutor, ThreadVerifier
from zapstack.zap import build_transfer
from zapstack.zapdb import ZapDB


class BlackHole:
    """A STATE_CHUNK handler that reads the request and never answers (a stalled peer)."""

    def __init__(self, info: StreamInfo) -> None:
        self.info = info

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        pass


class Setup:
    """A chain replicated on servers dbs[1..n]; a fresh client on dbs[0]."""

    def __init__(
        self,
        dbs: list[ZapDB],
        verifier: ThreadVerifier,
        n: int,
        fillers: int,
        blocks: int,
        config: BootstrapConfig,
    ) -> None:
        self.chain = Chain(fillers)
        self.dbs = dbs[1 : n + 1]
        for db in self.dbs:
            self.chain.genesis(db)
        self.executors = [BlockExecutor(db, verifier) for db in self.dbs]
        self.servers = [BootstrapServer(db) for db in self.dbs]
        self.grow(blocks)
        applier = ExecutorApplier(dbs[0], verifier)
        self.client = BootstrapClient(dbs[0], cert_ok, applier, config)
        self.net = LoopNet(self.client)
        self.peers = [b"P%d" % i for i in range(n)]

    def grow(self, n: int) -> None:
        new = self.chain.extend(self.dbs[0], self.executors[0], n)
        for _db, ex in zip(self.dbs[1:], self.executors[1:], strict=True):
            for block, _ in new:
                ex.finalize(ex.receive(block).receipt.block_id)
        for server in self.servers:
            for block, cert in new:
                server.add_finalized(block, cert)

    def events(self, kind: type) -> list[Any]:
        return [e for e in self.net.events if isinstance(e, kind)]


def test_stalled_state_stream_is_reissued_and_the_vote_stream_survives(
    dbs: list[ZapDB], verifier: ThreadVerifier
) -> None:
    cfg = BootstrapConfig(depth=4, batch=4, stall_timeout=5.0)
    s = Setup(dbs, verifier, 3, fillers=600, blocks=2, config=cfg)
    pair0 = s.net.add_server(
        s.peers[0], s.servers[0], override={StreamType.STATE_CHUNK: BlackHole}, pump=False
    )
    for peer, server in zip(s.peers[1:], s.servers[1:], strict=True):
        s.net.add_server(peer, server, pump=False)
    s.net.pump()
    target = s.events(TargetChosen)[0]
    assert target.height == 2 and target.state_root == s.dbs[0].root()
    stalled = [(i, r) for i, r in s.client.requests(s.peers[0]).items()]
    # window 2: every peer's first slot, then the second ones -- the stalled peer holds
    # the first batch and the fourth
    assert [(r[1], r[2], r[3]) for _, r in stalled] == [
        (StreamType.STATE_CHUNK, 0, 4),
        (StreamType.STATE_CHUNK, 12, 4),
    ]
    assert not s.client.done  # chunks 0..3 and 12..15 are owed by the stalled peer

    s.servers[0].publish_vote(b"vote before the stall")
    s.net.pump()
    (before,) = s.events(VoteReceived)
    assert (before.peer, before.record) == (s.peers[0], b"vote before the stall")

    s.net.advance(2.0)
    assert not s.events(StreamStalled)  # not yet past the deadline
    s.net.advance(3.5)
    assert s.events(StreamStalled) == [
        StreamStalled(s.peers[0], StreamType.STATE_CHUNK, rid) for rid, _ in stalled
    ]
    # the stalled peer saw exactly those two streams stopped with TIMEOUT, nothing else
    abnormal = [
        e for e in pair0.listener_events if isinstance(e, StreamEnded) and e.end is not End.FIN
    ]
    assert [(e.stream_type, e.end, e.code) for e in abnormal] == 2 * [
        (StreamType.STATE_CHUNK, End.STOPPED, WireCode.TIMEOUT)
    ]
    assert s.client.done
    synced = s.events(StateSynced)[0]
    assert synced.root == target.state_root == dbs[0].root()
    with s.dbs[0].read() as view:
        assert synced.chunks == 16 and synced.entries == len(list(view.iterate())) == 605

    # the stalled peer's vote stream is the same stream and still delivers
    s.servers[0].publish_vote(b"vote after the stall")
    s.net.pump()
    after = s.events(VoteReceived)[-1]
    assert (after.peer, after.stream_id, after.record) == (
        s.peers[0],
        before.stream_id,
        b"vote after the stall",
    )
    # and its live block pushes keep coming: the node follows the chain
    s.grow(1)
    s.net.pump()
    assert s.events(BlockApplied)[-1].height == 3
    assert dbs[0].root() == s.dbs[0].root()


def test_fresh_node_syncs_from_three_peers_and_follows_live_blocks(
    dbs: list[ZapDB], verifier: ThreadVerifier
) -> None:
    cfg = BootstrapConfig(depth=6, batch=8)
    s = Setup(dbs, verifier, 3, fillers=1500, blocks=3, config=cfg)
    for peer, server in zip(s.peers, s.servers, strict=True):
        s.net.add_server(peer, server, pump=False)
    s.net.pump()
    synced = s.events(StateSynced)[0]
    assert synced.height == 3 and synced.chunks == 64
    assert dbs[0].root() == synced.root == s.dbs[1].root()
    assert all(srv.chunks_served > 0 for srv in s.servers)  # work spread over the peers
    assert sum(srv.chunks_served for srv in s.servers) == 64

    s.grow(2)
    s.net.pump()
    assert [e.height for e in s.events(BlockApplied)] == [4, 5]
    assert dbs[0].root() == s.dbs[2].root()
    assert s.client.height == 5

    tx = build_transfer(USERS[0], bytes(32), 5, 1, 99)
    s.servers[1].publish_txs([tx, tx])
    s.net.pump()
    assert s.events(TxGossiped) == [TxGossiped(s.peers[1], tx)] * 2


@pytest.mark.parametrize("one_record", [False, True])
def test_a_gap_in_live_blocks_is_fetched_by_header_range(
    dbs: list[ZapDB], verifier: ThreadVerifier, monkeypatch: pytest.MonkeyPatch, one_record: bool
) -> None:
    """``one_record``: the server's reply bound is 1 byte, so each range reply ends after
    its first record (bootstrap.md §3) and the client asks for the rest again."""
    if one_record:
        monkeypatch.setattr(servermod, "MAX_RANGE_REPLY", 1)
    cfg = BootstrapConfig(depth=3, batch=8)
    s = Setup(dbs, verifier, 2, fillers=100, blocks=1, config=cfg)
    s.net.add_server(s.peers[0], s.servers[0])
    assert s.client.done
    # peer 1 joins late and already knows blocks 2..4: the client fetches them by range
    s.grow(0)
    new = s.chain.extend(s.dbs[0], s.executors[0], 3)
    ex = s.executors[1]
    for block, cert in new:
        ex.finalize(ex.receive(block).receipt.block_id)
        s.servers[1].add_finalized(block, cert)
    served = s.servers[1].bytes_served
    s.net.add_server(s.peers[1], s.servers[1])
    assert [e.height for e in s.events(BlockApplied)] == [2, 3, 4]
    assert dbs[0].root() == s.dbs[1].root() and not s.events(PeerBlamed)
    assert s.servers[1].bytes_served > served


class Answer:
    """STATE_CHUNK handler factory answering each request with ``answer(request bytes)``."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer

    def __call__(self, info: StreamInfo) -> Any:
        answer = self.answer

        class H:
            buf = bytearray()

            def on_data(self, data: bytes) -> Sequence[HandlerAction]:
                self.buf += data
                return NO_ACTIONS

            def on_end(self) -> Sequence[HandlerAction]:
                return (Reply(answer(bytes(self.buf)), fin=True),)

            def on_terminated(self, end: End, code: int | None) -> None:
                pass

        return H()


def corrupt(server: BootstrapServer) -> Answer:
    """The real reply, one value byte flipped."""

    def answer(request: bytes) -> bytes:
        reply = bytearray(server.answer_state(request))
        reply[-80] ^= 0x01  # inside the last chunk's entries or siblings
        return bytes(reply)

    return Answer(answer)


def test_bad_chunk_blames_its_peer_and_sync_completes_elsewhere(
    dbs: list[ZapDB], verifier: ThreadVerifier
) -> None:
    cfg = BootstrapConfig(depth=4, batch=4)
    s = Setup(dbs, verifier, 2, fillers=400, blocks=1, config=cfg)
    s.net.add_server(
        s.peers[0], s.servers[0], override={StreamType.STATE_CHUNK: corrupt(s.servers[0])}
    )
    s.net.add_server(s.peers[1], s.servers[1])
    blamed = s.events(PeerBlamed)
    assert [(b.peer, b.code) for b in blamed] == [(s.peers[0], WireCode.BAD_CHUNK)]
    assert s.client.done and dbs[0].root() == s.dbs[0].root()


def test_peer_disconnect_mid_sync_reissues_its_work(
    dbs: list[ZapDB], verifier: ThreadVerifier
) -> None:
    cfg = BootstrapConfig(depth=4, batch=4, stall_timeout=5.0)
    s = Setup(dbs, verifier, 2, fillers=300, blocks=1, config=cfg)
    s.net.add_server(s.peers[0], s.servers[0], override={StreamType.STATE_CHUNK: BlackHole})
    s.net.add_server(s.peers[1], s.servers[1])
    assert not s.client.done and s.client.requests(s.peers[0])
    s.net.disconnect(s.peers[0])  # no timer needed: the connection end re-issues at once
    assert s.client.done and not s.events(StreamStalled)
    assert dbs[0].root() == s.dbs[0].root()


@pytest.mark.parametrize("window", [1, 2, 3])
def test_a_peer_holds_window_state_requests_at_once(
    dbs: list[ZapDB], verifier: ThreadVerifier, window: int
) -> None:
    cfg = BootstrapConfig(depth=4, batch=4, window=window)
    s = Setup(dbs, verifier, 1, fillers=50, blocks=1, config=cfg)
    s.net.add_server(
        s.peers[0], s.servers[0], override={StreamType.STATE_CHUNK: BlackHole}, pump=False
    )
    s.net.pump()
    open_now = sorted((r[2], r[3]) for r in s.client.requests(s.peers[0]).values())
    assert open_now == [(4 * i, 4) for i in range(window)]  # consecutive batches, in order


def test_a_peer_past_its_reply_bound_is_asked_fewer_chunks_not_dropped(
    dbs: list[ZapDB], verifier: ThreadVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only peer refuses batches of 8 with INTERNAL (their reply passes its bound, made
    small here): the client halves what it asks of that peer, keeps asking it, and syncs."""
    cfg = BootstrapConfig(depth=4, batch=8)
    s = Setup(dbs, verifier, 1, fillers=600, blocks=1, config=cfg)
    server = s.servers[0]
    root = s.dbs[0].root()
    bodies = [len(server.answer_state(_state_request(root, 4, i, 1))) - 4 for i in range(16)]
    bound = 2 * max(bodies)  # two chunks always fit, eight never do
    assert sum(sorted(bodies)[:8]) > bound
    monkeypatch.setattr(servermod, "MAX_STATE_REPLY", bound)
    pair = s.net.add_server(s.peers[0], server)
    assert s.client.done and dbs[0].root() == root
    assert not s.events(PeerBlamed) and not s.client.peers[s.peers[0]].excluded
    assert s.client.peers[s.peers[0]].state_batch in (2, 4)
    refused = [
        e
        for e in pair.listener_events
        if isinstance(e, StreamEnded)
        and e.stream_type is StreamType.STATE_CHUNK
        and e.end is not End.FIN
    ]
    assert refused and all(e.code == WireCode.INTERNAL for e in refused)


def _state_request(root: bytes, depth: int, start: int, count: int) -> bytes:
    return encode_state_request(StateRequest(root, depth, start, count))


class NotFound:
    """A STATE_CHUNK handler refusing every request with NOT_FOUND (a root it dropped)."""

    asked = 0

    def __init__(self, info: StreamInfo) -> None:
        self.info = info

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        NotFound.asked += 1
        return (Reject(WireCode.NOT_FOUND),)

    def on_terminated(self, end: End, code: int | None) -> None:
        pass


def test_a_peer_refusing_every_request_is_asked_again_less_and_less_often(
    dbs: list[ZapDB], verifier: ThreadVerifier
) -> None:
    """The only peer refuses every state request: after the first round of asking again,
    the rounds wait 0.5 s, 1 s, 2 s ... (no busy loop of refused requests)."""
    cfg = BootstrapConfig(depth=3, batch=8, window=1)
    s = Setup(dbs, verifier, 1, fillers=50, blocks=1, config=cfg)
    NotFound.asked = 0
    s.net.add_server(s.peers[0], s.servers[0], override={StreamType.STATE_CHUNK: NotFound})
    assert NotFound.asked == 2  # the request, and the first round at once
    asked = []
    for _ in range(16):
        s.net.advance(0.5)
        asked.append(NotFound.asked)
    # rounds at +0.5 s, +1.5 s, +3.5 s, +7.5 s after the second request
    assert asked == [3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6]
    assert not s.client.done and not s.events(PeerBlamed)


def growing(s: Setup) -> Answer:
    """The real reply of a server whose chain finalizes a block before it answers each
    request: the target root falls behind the server's last keep_roots while it is synced."""

    def answer(request: bytes) -> bytes:
        s.grow(1)
        return s.servers[0].answer_state(request)

    return Answer(answer)


def test_a_sync_slower_than_keep_roots_blocks_keeps_its_root_and_follows(
    dbs: list[ZapDB], verifier: ThreadVerifier
) -> None:
    """16 blocks finalize while the 16 chunks of the target are pulled (keep_roots 4): the
    server keeps the root its peer is pulling, the sync completes, and the client then
    applies the blocks above the target."""
    cfg = BootstrapConfig(depth=4, batch=1, window=1)
    s = Setup(dbs, verifier, 1, fillers=100, blocks=1, config=cfg)
    assert s.servers[0].keep_roots == 4
    s.net.add_server(s.peers[0], s.servers[0], override={StreamType.STATE_CHUNK: growing(s)})
    target = s.events(TargetChosen)[0]
    assert target.height == 1 and s.client.done and not s.events(PeerBlamed)
    assert target.state_root not in s.servers[0].roots[-4:]  # it fell out long ago
    assert [e.height for e in s.events(BlockApplied)] == list(range(2, 18))
    assert dbs[0].root() == s.dbs[0].root()
