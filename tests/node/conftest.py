"""An in-process validator network for consensus tests: no sockets, a mock clock.

Each validator has its own ZapDB, executor, mempool and block store; messages
go through the real wire encoding into per-validator queues; ``pump`` delivers
them (optionally through a filter that drops or rewrites some) and ``advance``
moves the shared clock and ticks everyone.  :class:`Cluster` (the failure
matrix's harness) adds validators that stop and restart from their data.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from zapstack.consensus import cert as cert_mod
from zapstack.consensus.policy import accepted_tier
from zapstack.errors import InvalidBlock
from zapstack.mempool import Mempool
from zapstack.node.blockstore import BlockStore
from zapstack.node.engine import Consensus
from zapstack.node.genesis import Genesis, devnet_user, load_genesis, load_node_keys, make_devnet
from zapstack.node.wire import Message, MsgType, decode, encode
from zapstack.producer import build as producer_build
from zapstack.verify import ThreadVerifier, apply_genesis
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META, BlockExecutor
from zapstack.zap.frames import build_transfer, parse_block, parse_tx
from zapstack.zap.views import TxView
from zapstack.zapdb import FaultInjector, ZapDB

Filter = Callable[[int, Message], Message | None]


@dataclass
class Net:
    genesis: Genesis
    clock_ms: int = 0
    pending: list[tuple[int, Message]] = field(default_factory=list)
    nodes: list[Consensus] = field(default_factory=list)
    dbs: list[ZapDB] = field(default_factory=list)
    filter: Filter | None = None
    delivered: list[tuple[int, Message]] = field(default_factory=list)

    async def pump(self, limit: int = 10_000) -> None:
        steps = 0
        while self.pending and steps < limit:
            to, msg = self.pending.pop(0)
            steps += 1
            if self.filter is not None:
                msg = self.filter(to, msg)  # type: ignore[assignment]
                if msg is None:
                    continue
            self.delivered.append((to, msg))
            await self.nodes[to].handle(msg)
            await self.nodes[to].settle()  # background jobs finish in step (deterministic)

    async def advance(self, ms: int, step: int = 50) -> None:
        for _ in range(max(1, ms // step)):
            self.clock_ms += step
            for node in self.nodes:
                await node.tick()
                await node.settle()
            await self.pump()

    async def run_until(self, height: int, max_ms: int = 60_000) -> None:
        waited = 0
        while min(n.height for n in self.nodes) <= height and waited < max_ms:
            await self.advance(100)
            waited += 100


def roots(net: Net) -> set[bytes]:
    """Every validator's state root (one element when they agree)."""
    return {db.root() for db in net.dbs}


def heads(net: Net) -> set[bytes]:
    """Every validator's head block id (one element when they agree)."""
    return {node.executor.head for node in net.nodes}


def fund_txs(net: Net, count: int) -> list[bytes]:
    """``count`` transfers from devnet user 0 to user 1, nonces 0..count-1."""
    seed = bytes.fromhex(net.genesis.raw["devnet_seed"])
    user = devnet_user(seed, 0)
    to = hashlib.sha256(devnet_user(seed, 1).public_key).digest()
    return [build_transfer(user, to, 10, 2, nonce, net.genesis.chain_id) for nonce in range(count)]


class FakeIo:
    def __init__(self, net: Net, me: int) -> None:
        self.net, self.me = net, me

    def now_ms(self) -> int:
        return self.net.clock_ms

    def wall_ms(self) -> int:
        return 1_766_708_400_000 + self.net.clock_ms

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    async def run_background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def send(self, to: int, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        self.net.pending.append((to, decode(encode(msg, height, round_, self.me, payload))))

    def broadcast(self, msg: MsgType, height: int, round_: int, payload: bytes) -> None:
        for i in range(self.net.genesis.vset.n):
            self.send(i, msg, height, round_, payload)


@pytest.fixture(scope="session")
def devnet_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("devnet")
    make_devnet(home, 4, base_port=1, users=8)
    return home


@pytest.fixture
def net(devnet_home: Path, tmp_path: Path) -> Any:
    genesis = load_genesis(devnet_home / "genesis.json")
    n = Net(genesis)
    verifiers = []
    for i in range(genesis.vset.n):
        keys = load_node_keys(devnet_home / f"node-{i}" / "node.json", genesis)
        db = ZapDB.open(tmp_path / f"db{i}")
        txn = db.begin()
        apply_genesis(txn, genesis.allocations)
        txn.meta_set(HEAD_HEIGHT_META, (0).to_bytes(8, "little"))
        txn.meta_set(HEAD_ID_META, genesis.genesis_id)
        txn.commit()
        verifier = ThreadVerifier(1)
        verifiers.append(verifier)
        executor = BlockExecutor(
            db, verifier, chain_id=genesis.chain_id, genesis_id=genesis.genesis_id
        )
        node = Consensus(
            genesis, keys, executor, Mempool(), BlockStore(tmp_path / f"blocks{i}"), FakeIo(n, i)
        )
        n.nodes.append(node)
        n.dbs.append(db)
    yield n
    for node in n.nodes:
        node.executor.abandon()
    for db in n.dbs:
        db.close()
    for v in verifiers:
        v.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------- failure-matrix harness (restartable validators)


@dataclass
class Cluster:
    """An in-process :class:`Net` whose validators can be stopped and restarted."""

    net: Net
    home: Path
    tmp: Path
    verifiers: list[ThreadVerifier]

    @property
    def g(self) -> Genesis:
        return self.net.genesis

    def open(self, i: int, fault: FaultInjector | None = None) -> Consensus:
        """(Re)open validator ``i`` from its data (ZapDB + block store), as a restart does."""
        db = ZapDB.open(self.tmp / f"db{i}", fault_injector=fault)
        if db.meta_get(HEAD_HEIGHT_META) is None:
            txn = db.begin()
            apply_genesis(txn, self.g.allocations)
            txn.meta_set(HEAD_HEIGHT_META, (0).to_bytes(8, "little"))
            txn.meta_set(HEAD_ID_META, self.g.genesis_id)
            txn.commit()
        verifier = ThreadVerifier(1)
        self.verifiers.append(verifier)
        executor = BlockExecutor(
            db, verifier, chain_id=self.g.chain_id, genesis_id=self.g.genesis_id
        )
        keys = load_node_keys(self.home / f"node-{i}" / "node.json", self.g)
        node = Consensus(
            self.g,
            keys,
            executor,
            Mempool(),
            BlockStore(self.tmp / f"blocks{i}"),
            FakeIo(self.net, i),
        )
        node.last_final_ms = node.round_started_ms = self.net.clock_ms
        if i < len(self.net.nodes):
            self.net.nodes[i], self.net.dbs[i] = node, db
        else:
            self.net.nodes.append(node)
            self.net.dbs.append(db)
        return node

    def stop(self, i: int) -> None:
        """The operator stops validator ``i`` (its process exits: store closed)."""
        self.net.nodes[i].executor.abandon()
        self.net.dbs[i].close()

    def close(self) -> None:
        for i in range(len(self.net.nodes)):
            self.stop(i)
        for v in self.verifiers:
            v.close()


def make_cluster(home: Path, tmp: Path, faults: dict[int, FaultInjector] | None = None) -> Cluster:
    genesis = load_genesis(home / "genesis.json")
    tmp.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(Net(genesis), home, tmp, [])
    for i in range(genesis.vset.n):
        cluster.open(i, (faults or {}).get(i))
    return cluster


@pytest.fixture
def cluster(devnet_home: Path, tmp_path: Path) -> Iterator[Cluster]:
    c = make_cluster(devnet_home, tmp_path)
    yield c
    c.close()


def users(g: Genesis) -> list[Any]:
    seed = bytes.fromhex(g.raw["devnet_seed"])
    return [devnet_user(seed, i) for i in range(8)]


def transfer(g: Genesis, sender: int, nonce: int, amount: int = 10, fee: int = 2) -> bytes:
    us = users(g)
    to = hashlib.sha256(us[(sender + 1) % len(us)].public_key).digest()
    return build_transfer(us[sender], to, amount, fee, nonce, g.chain_id)


def gossip(c: Cluster, frames: list[bytes]) -> list[bytes]:
    """Admit ``frames`` into every mempool (what tx gossip does); returns their ids."""
    for frame in frames:
        for node in c.net.nodes:
            node.mempool.insert(parse_tx(frame))
    return [parse_tx(f).tx_id for f in frames]


def block_txs(node: Consensus, height: int) -> list[bytes]:
    data = node.blocks.block(height)
    assert data is not None
    return [tx.tx_id for tx in parse_block(data).txs()]


def chain(node: Consensus, upto: int | None = None) -> list[tuple[bytes | None, bytes | None]]:
    """(block, cert-block-id) per height 1..upto: what this validator committed."""
    top = node.executor.height if upto is None else upto
    out = []
    for h in range(1, top + 1):
        cert = node.blocks.cert(h)
        out.append((node.blocks.block(h), cert_mod.decode(cert).block_id if cert else None))
    return out


def assert_agree(c: Cluster, nodes: list[int] | None = None) -> None:
    """Same head, same root, same blocks at every committed height (nothing lost)."""
    idx = nodes if nodes is not None else list(range(len(c.net.nodes)))
    heads = {c.net.nodes[i].executor.head for i in idx}
    roots = {c.net.dbs[i].root() for i in idx}
    assert len(heads) == 1 and len(roots) == 1, (heads, roots)
    chains = {tuple(chain(c.net.nodes[i])) for i in idx}
    assert len(chains) == 1
    top = c.net.nodes[idx[0]].executor.height
    for i in idx:  # the committed root is the last block's certified post-state root
        data = c.net.nodes[i].blocks.block(top)
        assert data is not None and parse_block(data).state_root == c.net.dbs[i].root()


async def catch_up(c: Cluster, i: int, source: int) -> int:
    """Validator ``i`` fetches the heights it missed from ``source``: the same steps as
    ``ChainSync.catch_up`` (``zapstack.node.sync``) over HEADER_RANGE (verify each cert under the policy, then
    ``Consensus.commit``), without the socket."""
    node, src = c.net.nodes[i], c.net.nodes[source]
    fetched = 0
    while node.height <= src.executor.height:
        h = node.height
        block, cert_bytes = src.blocks.block(h), src.blocks.cert(h)
        assert block is not None and cert_bytes is not None
        cert = cert_mod.decode(cert_bytes)
        verdict = cert_mod.verify_cert(cert, c.g.vset, block_bytes=block)
        assert accepted_tier(c.g.policy, verdict.present) is not None
        await node.commit(block, cert_bytes, cert.round, source)
        fetched += 1
    return fetched


class Spy:
    """Records what a validator's executor refused (wraps ``BlockExecutor.receive``)."""

    def __init__(self, node: Consensus) -> None:
        self.errors: list[InvalidBlock] = []
        inner = node.executor.receive

        def receive(data: Any) -> Any:
            try:
                return inner(data)
            except InvalidBlock as exc:
                self.errors.append(exc)
                raise

        node.executor.receive = receive  # type: ignore[method-assign]


def evil_builder(
    monkeypatch: pytest.MonkeyPatch, c: Cluster, evil: int, corrupt: Callable[[list[TxView]], None]
) -> list[int]:
    """Validator ``evil``'s first block build is tampered with by ``corrupt`` (after the
    honest build ran and computed the post-state root); returns a one-item list that
    counts tampered builds."""
    honest = producer_build.execute_candidates
    acct = hashlib.sha256(c.net.nodes[evil].keys.proposer.public_key).digest()
    tampered = [0]

    def build(txn: Any, txs: list[TxView], proposer: bytes) -> Any:
        included, failed = honest(txn, txs, proposer)
        if proposer != acct or tampered[0]:
            return included, failed
        tampered[0] += 1
        corrupt(included)
        return included, []

    monkeypatch.setattr(producer_build, "execute_candidates", build)  # the Build stage's
    return tampered


async def others_until(c: Cluster, down: int, height: int, max_ms: int = 120_000) -> None:
    """Advance the network until every validator but ``down`` committed ``height``."""
    waited = 0
    up = [n for i, n in enumerate(c.net.nodes) if i != down]
    while min(n.executor.height for n in up) < height and waited < max_ms:
        await c.net.advance(100)
        waited += 100


async def dial_when_up(client: Any, address: Any, tries: int = 50, pause: float = 0.1) -> Any:
    """Dial a validator's genesis ``address`` from ``client`` (an Endpoint) until it
    answers: ``tries`` attempts ``pause`` s apart; fails the test if it never does."""
    from zapstack.errors import TransportError

    for _ in range(tries):
        try:
            return await client.dial(address.host, address.port, address.node_id)
        except (TransportError, OSError):
            await asyncio.sleep(pause)
    raise AssertionError(f"{address.host}:{address.port} never answered")
