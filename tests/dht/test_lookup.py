"""The iterative lookup state machine against a simulated id space."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.dht.ids import Contact, bucket_index, distance
from zapstack.dht.lookup import Lookup, LookupMode


def _world(seed: int, n: int, k: int = 8) -> dict[bytes, list[Contact]]:
    """n nodes, each holding Kademlia-shaped tables: k random contacts per bucket."""
    rng = random.Random(seed)
    ids = [rng.randbytes(32) for _ in range(n)]
    cs = {i: Contact(i, f"{x}:1") for x, i in enumerate(ids)}
    out: dict[bytes, list[Contact]] = {}
    for i in ids:
        buckets: dict[int, list[bytes]] = {}
        for j in ids:
            if j != i:
                buckets.setdefault(bucket_index(i, j), []).append(j)
        out[i] = [cs[j] for b in buckets.values() for j in rng.sample(b, min(k, len(b)))]
    return out


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_lookup_converges_to_the_true_k_closest(seed: int) -> None:
    world = _world(seed, 120)
    ids = list(world)
    me, target = ids[0], random.Random(seed).randbytes(32)
    lk = Lookup(me, target, LookupMode.NODES, world[me], k=8, alpha=3)
    steps = 0
    while not lk.finished:
        batch = lk.next_queries()
        assert batch and lk.in_flight <= 3
        for c in batch:
            near = sorted(world[c.node_id], key=lambda x: distance(x.node_id, target))[:8]
            lk.on_reply(c.node_id, tuple(near))
        steps += 1
        assert steps < 200
    truth = sorted((i for i in ids if i != me), key=lambda i: distance(i, target))[:8]
    got = [c.node_id for c in lk.result().closest]
    assert got == truth
    assert lk.result().queried < len(ids)  # it did not have to ask everyone


def test_value_stops_early_and_failures_are_skipped() -> None:
    world = _world(5, 40)
    me = next(iter(world))
    lk = Lookup(me, bytes(32), LookupMode.VALUE, world[me], alpha=3)
    a, b, _c = lk.next_queries()
    lk.on_failure(a.node_id)
    lk.on_failure(a.node_id)  # idempotent
    lk.on_reply(b.node_id, value=b"found")
    assert lk.finished and lk.result().value == b"found" and lk.next_queries() == []
    lk.on_reply(a.node_id, value=b"late")  # not in flight any more: ignored
    assert lk.result().value == b"found"


def test_providers_mode_collects_distinct_providers() -> None:
    world = _world(6, 40)
    me = next(iter(world))
    lk = Lookup(me, bytes(32), LookupMode.PROVIDERS, world[me], want_providers=2)
    p = Contact(b"\x01" * 32, "p:1")
    q1, q2, _ = lk.next_queries()
    lk.on_reply(q1.node_id, providers=(p,))
    assert not lk.finished
    lk.on_reply(q2.node_id, providers=(p, Contact(b"\x02" * 32, "q:1")))
    assert lk.finished and len(lk.result().providers) == 2
