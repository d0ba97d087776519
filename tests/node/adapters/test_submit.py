"""Every submitter gets an answer: TX_SUBMIT against a real validator over real QUIC.

Expected codes come from docs/formats/streams.md §TX_SUBMIT answer and the pool's rules
(docs/formats/mempool.md): a funded user's tx is admitted, the same frame again is a
DUPLICATE, an unfunded sender is INSUFFICIENT_BALANCE, a nonce far ahead is BAD_NONCE,
and a frame refused at stage 1 is answered by the reset's code."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from zapstack.devnet.processes import free_port_base
from zapstack.errors import WireCode
from zapstack.mempool.answer import SubmitAnswer
from zapstack.node.adapters.submit import submit_tx
from zapstack.node.genesis import devnet_user, load_genesis, make_devnet
from zapstack.node.node import Node
from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import Endpoint
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.qh3_adapter import Qh3Binding
from zapstack.zap.frames import build_transfer, parse_tx

from ..conftest import dial_when_up


def test_a_submitter_receives_admitted_or_rejected_with_the_code(tmp_path: Path) -> None:
    home = tmp_path / "net"
    make_devnet(home, 4, base_port=free_port_base(4), users=4)
    g = load_genesis(home / "genesis.json")
    seed = bytes.fromhex(g.raw["devnet_seed"])
    funded, unfunded = devnet_user(seed, 0), devnet_user(seed, 1000)
    to = hashlib.sha256(b"recipient").digest()
    good = build_transfer(funded, to, 10, 2, 0, g.chain_id)
    ahead = build_transfer(funded, to, 10, 2, 10_000, g.chain_id)
    broke = build_transfer(unfunded, to, 10, 2, 0, g.chain_id)

    async def main() -> list[SubmitAnswer]:
        node = Node(home / "node-0")
        serving = asyncio.create_task(node.serve())
        client = Endpoint(Qh3Binding(), NodeIdentity.generate(), {})
        try:
            peer = await dial_when_up(client, g.addresses[0])
            answers = []
            for frame in (good, good, broke, ahead, b"\x7fZIP" + good[4:]):
                answers.append(await submit_tx(peer, frame))
            assert parse_tx(good).tx_id in node.mempool
            return answers
        finally:
            await client.close()
            node.stop()
            await asyncio.wait_for(serving, 10)

    answers = run_bounded(main(), 40)
    codes = [a.code for a in answers]
    assert codes == [
        WireCode.NO_ERROR,
        WireCode.DUPLICATE,
        WireCode.INSUFFICIENT_BALANCE,
        WireCode.BAD_NONCE,
        WireCode.BAD_MAGIC,
    ]
    ids = [parse_tx(f).tx_id for f in (good, good, broke, ahead)] + [b""]
    assert [a.tx_id for a in answers] == ids
    assert all(a.account_nonce == 0 for a in answers)
    assert answers[0].credit == 64 and answers[-1].credit == 0  # a reset carries no credit
