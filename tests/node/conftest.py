"""An in-process validator network for consensus tests: no sockets, a mock clock.

Each validator has its own ZapDB, executor, mempool and block store; messages
go through the real wire encoding into per-validator queues; ``pump`` delivers
them (optionally through a filter that drops or rewrites some) and ``advance``
moves the shared clock and ticks everyone.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from zapstack.mempool import Mempool
from zapstack.node.blockstore import BlockStore
from zapstack.node.engine import Consensus
from zapstack.node.genesis import Genesis, devnet_user, load_genesis, load_node_keys, make_devnet
from zapstack.node.wire import Message, MsgType, decode, encode
from zapstack.verify import ThreadVerifier, apply_genesis
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META, BlockExecutor
from zapstack.zap.frames import build_transfer
from zapstack.zapdb import ZapDB

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

    async def advance(self, ms: int, step: int = 50) -> None:
        for _ in range(max(1, ms // step)):
            self.clock_ms += step
            for node in self.nodes:
                await node.tick()
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
