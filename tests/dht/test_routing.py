"""k-buckets: insertion, replacement cache, eviction, closest, refresh."""

from __future__ import annotations

import random

from zapstack.dht.ids import Contact, bucket_index, distance
from zapstack.dht.routing import RoutingTable

SELF = bytes(32)


def _c(n: int) -> Contact:
    return Contact(n.to_bytes(32, "big"), f"h{n}:1")


def test_full_bucket_keeps_old_live_contacts_and_caches_new_ones() -> None:
    t = RoutingTable(SELF, k=3)
    ids = [0x80 << 248 | i for i in range(5)]  # all in bucket 255
    for n in ids:
        t.seen(_c(n), 0.0)
    assert len(t) == 3 and [c.node_id for c in t.contacts()] == [_c(n).node_id for n in ids[:3]]
    t.failed(_c(ids[0]).node_id)
    assert _c(ids[0]).node_id in t  # one failure is forgiven
    t.failed(_c(ids[0]).node_id)
    assert _c(ids[0]).node_id not in t and _c(ids[4]).node_id in t  # newest replacement
    t.remove(_c(ids[1]).node_id)
    t.remove(_c(ids[1]).node_id)  # idempotent
    assert _c(ids[3]).node_id in t and len(t) == 3


def test_seen_moves_to_tail_and_self_is_never_stored() -> None:
    t = RoutingTable(SELF, k=3)
    t.seen(Contact(SELF, "me:1"), 0.0)
    assert len(t) == 0
    for n in (1 << 255, (1 << 255) + 1):
        t.seen(_c(n), 0.0)
    t.seen(_c(1 << 255), 1.0)
    assert t.contacts()[-1] == _c(1 << 255)


def test_closest_is_sorted_by_xor_distance() -> None:
    rng = random.Random(3)
    me = rng.randbytes(32)
    t = RoutingTable(me, k=20)
    cs = [Contact(rng.randbytes(32), f"a{i}:1") for i in range(200)]
    for c in cs:
        t.seen(c, 0.0)
    target = rng.randbytes(32)
    got = t.closest(target, 10)
    held = t.contacts()
    assert got == sorted(held, key=lambda c: distance(c.node_id, target))[:10]


def test_refresh_targets_land_in_stale_buckets() -> None:
    rng = random.Random(1)
    t = RoutingTable(SELF, now=0.0, refresh_interval=100.0)
    t.seen(_c(1 << 250), 0.0)
    assert t.refresh_targets(50.0, rng) == []
    targets = t.refresh_targets(100.0, rng)
    assert sorted(bucket_index(SELF, x) for x in targets) == list(range(250, 256))
    assert t.refresh_targets(150.0, rng) == []
