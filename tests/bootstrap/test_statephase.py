"""The state phase through the client (in-memory sessions): a sync without a configured
depth probes one chunk first and downloads at the depth it gives; peers that refuse the
probe as too large move it deeper only together; a bad probe reply is blamed."""

from __future__ import annotations

from typing import ClassVar

import pytest

from zapstack.bootstrap import BootstrapConfig, PeerBlamed, StateProgress, StateSynced, depthprobe
from zapstack.bootstrap import server as servermod
from zapstack.bootstrap.depthprobe import probe_index
from zapstack.bootstrap.events import NO_PROGRESS
from zapstack.bootstrap.server import BootstrapServer, RequestHandler
from zapstack.bootstrap.wire import decode_state_request, encode_chunk
from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.transport.handler import StreamInfo
from zapstack.transport.streams import StreamType
from zapstack.verify import ThreadVerifier
from zapstack.zapdb import ZapDB

from .test_client import Setup, corrupt
from .test_depthprobe import model_depth


def expected_depth(db: ZapDB, probe_depth: int) -> int:
    """The depth the rule gives for ``db``'s state sampled at ``probe_depth`` (the chunk
    read from the store, its bytes summed here, the log2 model of test_depthprobe)."""
    with db.read() as view:
        root = view.root()
        chunk = view.chunk(probe_depth, probe_index(root, probe_depth))
    return model_depth(sum(6 + len(k) + len(v) for k, v in chunk.entries), probe_depth)


class TooLargeAbove:
    """STATE_CHUNK: refuses requests shallower than ``depth`` with INTERNAL (what a server
    says of a chunk past its bound), answers the rest as ``server`` does."""

    asked: ClassVar[list[int]] = []

    def __init__(self, server: BootstrapServer, depth: int) -> None:
        self.server, self.depth = server, depth

    def answer(self, data: bytes) -> bytes:
        req = decode_state_request(data)
        TooLargeAbove.asked.append(req.depth)
        if req.depth < self.depth:
            raise RemoteProtocolError("chunk over the record bound", code=WireCode.INTERNAL)
        return self.server.answer_state(data)

    def __call__(self, info: StreamInfo) -> RequestHandler:
        return RequestHandler(self.answer)


def test_an_unset_depth_is_probed_and_the_sync_uses_it(
    dbs: list[ZapDB], verifier: ThreadVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(depthprobe, "AUTO_CHUNK_BYTES", 64)  # a small state, deep chunks
    s = Setup(dbs, verifier, 3, fillers=600, blocks=2, config=BootstrapConfig(batch=64))
    assert s.client.progress == NO_PROGRESS
    for peer, server in zip(s.peers, s.servers, strict=True):
        s.net.add_server(peer, server, pump=False)
    s.net.pump()
    depth = expected_depth(s.dbs[0], 8)
    assert depth > depthprobe.MIN_AUTO_DEPTH  # the probe moved it off the floor
    (synced,) = s.events(StateSynced)
    assert synced.chunks == 1 << depth and synced.root == dbs[0].root() == s.dbs[0].root()
    assert s.client.progress == StateProgress(1 << depth, 1 << depth, synced.entries)


def test_the_floor_depth_for_a_small_state(dbs: list[ZapDB], verifier: ThreadVerifier) -> None:
    s = Setup(dbs, verifier, 2, fillers=300, blocks=1, config=BootstrapConfig())
    for peer, server in zip(s.peers, s.servers, strict=True):
        s.net.add_server(peer, server, pump=False)
    s.net.pump()
    (synced,) = s.events(StateSynced)
    assert synced.chunks == 256 and dbs[0].root() == s.dbs[0].root()


@pytest.mark.parametrize("refusing", [1, 2])
def test_size_refusals_move_the_probe_deeper_only_when_two_peers_agree(
    dbs: list[ZapDB], verifier: ThreadVerifier, monkeypatch: pytest.MonkeyPatch, refusing: int
) -> None:
    monkeypatch.setattr(depthprobe, "AUTO_CHUNK_BYTES", 64)
    s = Setup(dbs, verifier, 3, fillers=600, blocks=2, config=BootstrapConfig(batch=64))
    TooLargeAbove.asked = []
    for i, (peer, server) in enumerate(zip(s.peers, s.servers, strict=True)):
        override = {StreamType.STATE_CHUNK: TooLargeAbove(server, 16)} if i < refusing else {}
        s.net.add_server(peer, server, override=override, pump=False)
    s.net.pump()
    probed = 16 if refusing == 2 else 8  # one refusal alone: another peer is asked at 8
    (synced,) = s.events(StateSynced)
    assert synced.chunks == 1 << expected_depth(s.dbs[0], probed)
    # the probe: refused at 8 by each refusing peer, then (two agreed) asked at 16
    assert TooLargeAbove.asked[: 2 * refusing - 1] == [8, 8, 16][: 2 * refusing - 1]
    assert dbs[0].root() == s.dbs[0].root() and not s.events(PeerBlamed)


def test_a_bad_probe_reply_is_blamed_and_another_peer_answers(
    dbs: list[ZapDB], verifier: ThreadVerifier
) -> None:
    s = Setup(dbs, verifier, 2, fillers=400, blocks=1, config=BootstrapConfig())
    s.net.add_server(
        s.peers[0], s.servers[0], override={StreamType.STATE_CHUNK: corrupt(s.servers[0])}
    )
    s.net.add_server(s.peers[1], s.servers[1])
    blamed = s.events(PeerBlamed)
    assert [(b.peer, b.code) for b in blamed] == [(s.peers[0], WireCode.BAD_CHUNK)]
    (synced,) = s.events(StateSynced)
    assert synced.chunks == 256 and dbs[0].root() == s.dbs[0].root()


def test_a_state_too_large_for_the_first_probe_depth_syncs(
    dbs: list[ZapDB], verifier: ThreadVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure the probe removes, scaled down: the servers' record bound (2^24 in the
    format, here a few KiB) is passed by every chunk at the first probe depth, so every
    peer refuses the probe with INTERNAL; the probe goes deeper, its chunk fits, and the
    sync runs at the depth that chunk gives (chunks 64x under the bound, as 256 KiB is
    under 16 MiB)."""
    s = Setup(dbs, verifier, 2, fillers=3000, blocks=1, config=BootstrapConfig(batch=16))
    with s.dbs[0].read() as view:
        sizes = {d: [len(encode_chunk(view.chunk(d, i))) for i in range(1 << d)] for d in (2, 6)}
    bound = max(sizes[6]) + 64
    assert min(sizes[2]) > bound  # depth 2: every chunk over the bound; depth 6: none
    monkeypatch.setattr(servermod, "MAX_CHUNK_RECORD", bound)
    monkeypatch.setattr(servermod, "MAX_STATE_REPLY", 16 * bound)
    monkeypatch.setattr(depthprobe, "PROBE_DEPTHS", (2, 6, 10))
    monkeypatch.setattr(depthprobe, "MIN_AUTO_DEPTH", 2)
    monkeypatch.setattr(depthprobe, "AUTO_CHUNK_BYTES", bound // 64)
    for peer, server in zip(s.peers, s.servers, strict=True):
        s.net.add_server(peer, server, pump=False)
    s.net.pump()
    (synced,) = s.events(StateSynced)
    depth = expected_depth(s.dbs[0], 6)
    assert depth > 6 and synced.chunks == 1 << depth
    assert dbs[0].root() == s.dbs[0].root() and not s.events(PeerBlamed)
