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
    writable: set[int] = field(default_factory=set)

    def is_writable(self, stream_id: int) -> bool:
        return stream_id in self.writable


@dataclass
class FakePeer:
    node_id: bytes
    session: _Session = field(default_factory=_Session)
    stopped: list[tuple[int, int]] = field(default_factory=list)
    replies: list[tuple[int, bytes]] = field(default_factory=list)

    def refuse(self, stream_id: int, code: int) -> None:
        self.stopped.append((stream_id, code))

    def reply(self, stream_id: int, data: bytes) -> None:
        self.replies.append((stream_id, data))


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


def test_reply_stream_answers_the_one_connection_that_holds_the_stream(
    devnet_home: Path,
) -> None:
    c = conns(devnet_home)
    node_id = c.g.addresses[1].node_id
    old, new, other = FakePeer(node_id), FakePeer(node_id), FakePeer(b"z" * 32)
    new.session.writable.add(4)
    other.session.writable.add(4)
    c.peers[1] = old  # type: ignore[assignment]
    c.clients += [new, other]  # type: ignore[list-item]
    c.reply_stream(node_id, 4, b"answer")
    assert new.replies == [(4, b"answer")] and old.replies == other.replies == []
    c.reply_stream(node_id, 8, b"late")  # no connection holds it open: dropped
    assert new.replies == [(4, b"answer")]


def test_attach_sets_the_node_stream_bounds_on_the_endpoint(devnet_home: Path) -> None:
    c = conns(devnet_home)

    class _Endpoint:
        limits = None

    endpoint = _Endpoint()
    c.attach(endpoint)  # type: ignore[arg-type]
    assert endpoint.limits is not None
    assert endpoint.limits.validators == frozenset(a.node_id for a in c.g.addresses)


def test_inbound_connections_are_filed_and_closed_clients_forgotten(devnet_home: Path) -> None:
    c = conns(devnet_home)
    g = c.g
    validator: Any = FakePeer(g.addresses[2].node_id)
    c.file_inbound(validator)
    assert c.peers == {2: validator} and c.clients == []
    clients: list[Any] = [FakePeer(bytes([i]) * 32) for i in range(5)]
    for client in clients[:4]:
        c.file_inbound(client)
    clients[0].session.closed = clients[2].session.closed = True
    c.file_inbound(clients[4])  # a wallet that left does not stay forever
    assert c.clients == [clients[1], clients[3], clients[4]]
    me: Any = FakePeer(g.addresses[0].node_id)  # our own id dialing in is a client
    c.file_inbound(me)
    assert c.clients[-1] is me and 0 not in c.peers
