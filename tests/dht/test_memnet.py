"""≥30 DHT nodes in one process: store / provide, find, and a light-client pull that
survives its original server disconnecting mid-transfer."""

from __future__ import annotations

import hashlib
import random

from zapstack.dht.blocks import synthetic_block, synthetic_layout
from zapstack.dht.chunk_actions import PullComplete
from zapstack.dht.chunks import ChunkPull
from zapstack.dht.ids import distance
from zapstack.dht.memnet import MemNet
from zapstack.dht.node import DhtNode, OpKind
from zapstack.zap.merkle import CHUNK_SIZE

NODES = 32


def _network(seed: int) -> tuple[MemNet, list[DhtNode]]:
    rng = random.Random(seed)
    net = MemNet(seed=seed, latency=0.01, piece_bytes=8 * 1024, piece_gap=0.002)
    nodes = [
        net.add(DhtNode(rng.randbytes(32), f"10.0.{i // 250}.{i % 250}:9000", rng=random.Random(i)))
        for i in range(NODES)
    ]
    for n in nodes[1:]:
        net.wait(n.contact.addr, n.bootstrap([nodes[0].contact], net.now))
    return net, nodes


def test_routing_tables_fill_and_lookups_find_the_true_closest() -> None:
    net, nodes = _network(1)
    assert all(len(n.routing) >= 10 for n in nodes)
    target = hashlib.sha256(b"some key").digest()
    done = net.wait(nodes[17].contact.addr, nodes[17].find_node(target, net.now))
    truth = sorted((n.id for n in nodes if n is not nodes[17]), key=lambda i: distance(i, target))
    assert [c.node_id for c in done.result.closest] == truth[:20]
    assert done.kind is OpKind.FIND_NODE


def test_store_find_value_and_pull_after_origin_disconnects_mid_transfer() -> None:
    net, nodes = _network(2)
    # a small value record, found by FIND_VALUE from a node that does not hold it
    value = b"light-client checkpoint record"
    key = hashlib.sha256(value).digest()
    stored = net.wait(nodes[3].contact.addr, nodes[3].store(value, net.now))
    assert len(stored.acked) == 20
    seeker = next(n for n in nodes if n.records.get_value(key, net.now) is None)
    found = net.wait(seeker.contact.addr, seeker.find_value(key, net.now))
    assert found.result.value == value and found.result.queried > 0

    # a multi-chunk block, served by its origin and three replicas, announced as providers
    hlen = 200
    block = synthetic_block(b"\x42" * 32, hlen, 7 * CHUNK_SIZE + 999)
    layout = synthetic_layout(block[:hlen])
    origin, replicas = nodes[5], nodes[6:9]
    block_id = origin.serve_block(block, layout)
    assert block_id == hashlib.sha256(block).digest()
    for n in [origin, *replicas]:
        n.serve_block(block, layout)
        acked = net.wait(n.contact.addr, n.provide(block_id, net.now)).acked
        assert len(acked) == 20

    client = nodes[25]
    provs = net.wait(client.contact.addr, client.get_providers(block_id, net.now))
    addrs = {p.addr for p in provs.result.providers}
    assert addrs == {n.contact.addr for n in [origin, *replicas]}

    # pull with the origin listed first: it gets the header and a share of chunks
    order = [origin.contact.addr, *sorted(addrs - {origin.contact.addr})]
    pull = ChunkPull(block_id, order, layout=synthetic_layout, now=net.now)
    handle = net.start_pull(client.contact.addr, pull)
    while pull.partial_bytes(origin.contact.addr) == 0:  # run until origin is mid-stream
        net.run(until=net.now + 0.001)
        assert not pull.done
    assert len(pull.missing) > 0
    cut_off = pull.in_flight(origin.contact.addr)
    assert cut_off
    asked_before = len(handle.requests)
    net.disconnect(origin.contact.addr)
    net.run()

    assert isinstance(handle.outcome, PullComplete)
    assert pull.result == block and hashlib.sha256(pull.result).digest() == block_id
    assert pull.dropped_bytes > 0  # the origin's partial response was discarded
    reissued = {i for p, i in handle.requests[asked_before:]}
    assert set(cut_off) <= reissued  # every chunk the origin owed was asked elsewhere
    assert all(p != origin.contact.addr for p, _ in handle.requests[asked_before:])
    assert pull.blamed == frozenset()

    # and a late FIND on the providers after the disconnect still finds the replicas
    again = net.wait(nodes[30].contact.addr, nodes[30].get_providers(block_id, net.now))
    assert {n.contact.addr for n in replicas} <= {p.addr for p in again.result.providers}
