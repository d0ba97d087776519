"""DhtNode server side: the handler table, records, rate limits, authenticated senders."""

from __future__ import annotations

import hashlib
import random

import pytest

from zapstack.dht import messages
from zapstack.dht.ids import Contact
from zapstack.dht.node import DhtNode
from zapstack.dht.records import RateLimiter
from zapstack.dht.server import _HANDLERS, REQUEST_COST
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
