"""DhtNode client side: reply checks, timeouts and refresh."""

from __future__ import annotations

import hashlib
import random

import pytest

from zapstack.dht import messages, wire
from zapstack.dht.node import CancelRpc, DhtNode, OpDone, SendRpc
from zapstack.errors import RemoteProtocolError, WireCode


def _node(i: int, **kw: object) -> DhtNode:
    return DhtNode(bytes([i]) * 32, f"n{i}:1", rng=random.Random(i), **kw)  # type: ignore[arg-type]


def _first_rpc(node: DhtNode) -> SendRpc:
    a = node.next_action()
    assert isinstance(a, SendRpc)
    return a


def test_value_reply_with_wrong_hash_is_a_remote_error_and_drops_the_peer() -> None:
    client, liar = _node(1), _node(2)
    client.routing.seen(liar.contact, 0.0)
    key = hashlib.sha256(b"real").digest()
    op = client.find_value(key, 0.0)
    rpc = _first_rpc(client)
    with pytest.raises(RemoteProtocolError) as e:
        client.rpc_response(rpc.rpc_id, messages.Value(key, b"fake"), 0.1)
    assert e.value.code is WireCode.BAD_FIELD
    assert liar.id not in client.routing
    done = client.next_action()
    assert isinstance(done, OpDone) and done.op_id == op and done.result.value is None


def test_wrong_reply_type_is_a_remote_error() -> None:
    client, peer = _node(1), _node(2)
    client.routing.seen(peer.contact, 0.0)
    client.find_node(bytes(32), 0.0)
    rpc = _first_rpc(client)
    with pytest.raises(RemoteProtocolError) as e:
        client.rpc_response(rpc.rpc_id, messages.Pong(), 0.1)
    assert e.value.code is WireCode.STREAM_PROTOCOL_VIOLATION
    client.rpc_response(rpc.rpc_id, messages.Pong(), 0.1)  # late duplicate: ignored


def test_timeouts_cancel_and_count_against_the_peer() -> None:
    client, peer = _node(1, rpc_timeout=2.0), _node(2)
    client.routing.seen(peer.contact, 0.0)
    for t in (0.0, 10.0):
        client.find_node(bytes(32), t)
        rpc = _first_rpc(client)
        assert client.next_deadline() == t + 2.0
        client.handle_timer(t + 2.0)
        assert client.next_action() == CancelRpc(rpc.rpc_id, WireCode.TIMEOUT)
        assert isinstance(client.next_action(), OpDone)
    assert peer.id not in client.routing  # two failures evict


def test_bucket_refresh_is_driven_by_now() -> None:
    client = _node(1)
    client.routing.seen(_node(2).contact, 0.0)
    client.handle_timer(100.0)
    assert client.next_action() is None
    client.handle_timer(3600.0)
    sent = [a for a in iter(client.next_action, None) if isinstance(a, SendRpc)]
    assert sent and all(isinstance(wire.decode(a.data), messages.FindNode) for a in sent)
