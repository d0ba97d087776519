"""Record store bounds, content addressing, provider caps, token buckets."""

from __future__ import annotations

import hashlib

import pytest

from zapstack.dht.ids import Contact
from zapstack.dht.messages import MAX_VALUE_BYTES
from zapstack.dht.records import RateLimiter, RecordStore
from zapstack.errors import RemoteProtocolError, WireCode


def _k(v: bytes) -> bytes:
    return hashlib.sha256(v).digest()


def test_values_are_content_addressed_and_bounded() -> None:
    s = RecordStore(bytes(32), ttl=10.0)
    with pytest.raises(RemoteProtocolError) as e:
        s.put_value(_k(b"a"), b"b", 0.0)
    assert e.value.code is WireCode.BAD_FIELD
    with pytest.raises(RemoteProtocolError):
        s.put_value(_k(b""), b"", 0.0)
    big = b"x" * (MAX_VALUE_BYTES + 1)
    with pytest.raises(RemoteProtocolError):
        s.put_value(_k(big), big, 0.0)
    s.put_value(_k(b"a"), b"a", 0.0)
    assert s.get_value(_k(b"a"), 9.9) == b"a"
    assert s.get_value(_k(b"a"), 10.0) is None  # expired


def test_full_store_prefers_keys_close_to_self() -> None:
    s = RecordStore(bytes(32), max_values=4)
    vals = [bytes([i]) * 8 for i in range(40)]
    by_dist = sorted(vals, key=lambda v: int.from_bytes(_k(v), "big"))
    for v in by_dist[::-1][:4]:  # the four farthest first
        s.put_value(_k(v), v, 0.0)
    s.put_value(_k(by_dist[0]), by_dist[0], 0.0)  # closest evicts the farthest
    assert s.get_value(_k(by_dist[0]), 0.0) == by_dist[0]
    assert s.get_value(_k(by_dist[-1]), 0.0) is None
    assert s.value_count == 4
    s2 = RecordStore(bytes(32), max_values=1)
    s2.put_value(_k(by_dist[0]), by_dist[0], 0.0)
    with pytest.raises(RemoteProtocolError) as e:
        s2.put_value(_k(by_dist[-1]), by_dist[-1], 0.0)
    assert e.value.code is WireCode.RATE_LIMITED


def test_corrupted_value_is_never_returned() -> None:
    s = RecordStore(bytes(32))
    s.put_value(_k(b"abc"), b"abc", 0.0)
    s._values[_k(b"abc")].value = b"abd"  # memory corruption / bug
    assert s.get_value(_k(b"abc"), 0.0) is None


def test_providers_capped_at_k_and_expire() -> None:
    s = RecordStore(bytes(32), k=3, ttl=5.0)
    key = bytes(range(32))
    for i in range(5):
        s.add_provider(key, Contact(bytes([i]) * 32, f"p{i}:1"), float(i))
    got = s.get_providers(key, 4.0)
    assert [c.addr for c in got] == ["p4:1", "p3:1", "p2:1"]
    assert [c.addr for c in s.get_providers(key, 7.5)] == ["p4:1", "p3:1"]
    assert s.get_providers(key, 100.0) == []


def test_token_bucket() -> None:
    r = RateLimiter(rate=2.0, burst=2.0, max_peers=2)
    assert r.allow(b"a", 0.0) and r.allow(b"a", 0.0) and not r.allow(b"a", 0.0)
    assert r.allow(b"a", 0.5)
    assert not r.allow(b"a", 0.5, cost=1.0)
    r.allow(b"b", 0.5)
    r.allow(b"c", 0.5)  # forgets the least recently used peer
    assert r.allow(b"a", 0.5) and r.allow(b"a", 0.5)
