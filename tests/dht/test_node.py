"""DhtNode server handlers, client-side reply checks, timeouts and refresh."""

from __future__ import annotations

import hashlib
import random

import pytest

from zapstack.dht import messages, wire
from zapstack.dht.ids import Contact
from zapstack.dht.node import _HANDLERS, REQUEST_COST, CancelRpc, DhtNode, OpDone, SendRpc
from zapstack.dht.records import RateLimiter
from zapstack.errors import RemoteProtocolError, WireCode


def _node(i: int, **kw: object) -> DhtNode:
    return DhtNode(bytes([i]) * 32, f"n{i}:1", rng=random.Random(i), **kw)  # type: ignore[arg-type]


def test_handler_table_matches_cost_table() -> None:
    assert set(_HANDLERS) == set(REQUEST_COST)


def test_store_checks_key_and_find_value_returns_it() -> None:
    server, peer = _node(1), _node(2).contact
    v = b"hello"
    with pytest.raises(RemoteProtocolError) as e:
        server.handle_request(peer, messages.Store(bytes(32), v), 0.0)
    assert e.value.code is WireCode.BAD_FIELD
    key = hashlib.sha256(v).digest()
    assert server.handle_request(peer, messages.Store(key, v), 0.0) == messages.Stored()
    assert server.handle_request(peer, messages.FindValue(key), 1.0) == messages.Value(key, v)
    miss = server.handle_request(peer, messages.FindValue(bytes(32)), 1.0)
    assert isinstance(miss, messages.Nodes) and peer not in miss.contacts  # never echoes the asker
    assert peer.node_id in server.routing  # an authenticated request proves liveness


def test_non_requests_and_unknown_blocks_reset_the_stream() -> None:
    server, peer = _node(1), _node(2).contact
    with pytest.raises(RemoteProtocolError) as e:
        server.handle_request(peer, messages.Pong(), 0.0)
    assert e.value.code is WireCode.STREAM_PROTOCOL_VIOLATION
    for req in (messages.GetHeader(bytes(32)), messages.GetChunk(bytes(32), 0)):
        with pytest.raises(RemoteProtocolError) as e:
            server.handle_request(peer, req, 0.0)
        assert e.value.code is WireCode.NOT_FOUND


def test_rate_limit_per_peer_on_injected_time() -> None:
    server = _node(1, limiter=RateLimiter(rate=1.0, burst=3.0))
    a, b = _node(2).contact, _node(3).contact
    for _ in range(3):
        server.handle_request(a, messages.Ping(), 0.0)
    with pytest.raises(RemoteProtocolError) as e:
        server.handle_request(a, messages.Ping(), 0.0)
    assert e.value.code is WireCode.RATE_LIMITED
    server.handle_request(b, messages.Ping(), 0.0)  # other peers unaffected
    server.handle_request(a, messages.Ping(), 1.0)  # one token back after one second


def test_provider_record_names_the_authenticated_sender() -> None:
    server, peer = _node(1), _node(2).contact
    key = bytes(range(32))
    server.handle_request(peer, messages.AddProvider(key, "elsewhere:7"), 0.0)
    got = server.handle_request(_node(3).contact, messages.GetProviders(key), 0.0)
    assert isinstance(got, messages.Providers)
    assert got.providers == (Contact(peer.node_id, "elsewhere:7"),)


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
