"""A validator's connection table: lookups over validators and clients, live or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zapstack.node.genesis import load_genesis
from zapstack.node.peers import Connections


@dataclass
class _Session:
    closed: bool = False


@dataclass
class FakePeer:
    node_id: bytes
    session: _Session = field(default_factory=_Session)
    stopped: list[tuple[int, int]] = field(default_factory=list)

    def stop_reading(self, stream_id: int, code: int) -> None:
        self.stopped.append((stream_id, code))


def conns(devnet_home: Path) -> Connections:
    return Connections(load_genesis(devnet_home / "genesis.json"), 0)


def test_live_and_connected_skip_closed_connections(devnet_home: Path) -> None:
    c = conns(devnet_home)
    g = c.g
    peers: dict[int, Any] = {i: FakePeer(g.addresses[i].node_id) for i in (1, 2, 3)}
    peers[2].session.closed = True
    c.peers.update(peers)
    assert c.connected() == [1, 3]
    assert c.live() == [peers[1], peers[3]]
    assert c.by_node_id[g.addresses[3].node_id] == 3


def test_find_prefers_the_newest_live_client(devnet_home: Path) -> None:
    c = conns(devnet_home)
    old, new, dead = FakePeer(b"x" * 32), FakePeer(b"x" * 32), FakePeer(b"x" * 32)
    dead.session.closed = True
    c.clients += [old, new, dead]  # type: ignore[list-item]
    assert c.find(b"x" * 32) is new
    assert c.find(b"y" * 32) is None


def test_stop_stream_reaches_every_connection_of_the_peer(devnet_home: Path) -> None:
    c = conns(devnet_home)
    node_id = c.g.addresses[1].node_id
    validator, client, other = FakePeer(node_id), FakePeer(node_id), FakePeer(b"z" * 32)
    c.peers[1] = validator  # type: ignore[assignment]
    c.clients += [client, other]  # type: ignore[list-item]
    c.stop_stream(node_id, 4, 0x10)
    assert validator.stopped == client.stopped == [(4, 0x10)] and other.stopped == []
